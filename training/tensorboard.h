#pragma once
// TensorBoard event files (events.out.tfevents.*) without a protobuf dependency: records are
// framed as TFRecords (length, masked CRC32C of the length, data, masked CRC32C of the data)
// and hold hand-encoded tensorflow.Event messages with scalar summaries.

#include <cstdint>
#include <fstream>
#include <string>

namespace loantwin {

/// CRC32C (Castagnoli polynomial 0x82F63B78) of bytes.
uint32_t Crc32c(const void* data, size_t size);
/// TFRecord's masked CRC: ((crc >> 15) | (crc << 17)) + 0xa282ead8.
uint32_t MaskedCrc32c(const void* data, size_t size);
/// One TFRecord frame around `data`.
std::string TfRecord(const std::string& data);
/// A serialized tensorflow.Event with one scalar summary value.
std::string ScalarEvent(double wall_time, int64_t step, const std::string& tag, float value);

class TensorBoardWriter {
 public:
  /// Creates <dir>/events.out.tfevents.<unix time>.loantwin and writes the version event.
  explicit TensorBoardWriter(const std::string& dir);
  void AddScalar(const std::string& tag, float value, int64_t step);
  void Flush() { out_.flush(); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::ofstream out_;
};

}  // namespace loantwin
