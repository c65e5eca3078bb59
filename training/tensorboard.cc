#include "training/tensorboard.h"

#include <fmt/format.h>

#include <array>
#include <chrono>
#include <cstring>
#include <stdexcept>

namespace loantwin {
namespace {

const std::array<uint32_t, 256>& Crc32cTable() {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  return table;
}

void Varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

template <typename T>
void Fixed(std::string& out, T v) {
  char buf[sizeof(T)];
  std::memcpy(buf, &v, sizeof(T));  // little-endian hosts (x86-64, aarch64)
  out.append(buf, sizeof(T));
}

void LengthDelimited(std::string& out, int field, const std::string& bytes) {
  Varint(out, (static_cast<uint64_t>(field) << 3) | 2);
  Varint(out, bytes.size());
  out += bytes;
}

double Now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

uint32_t Crc32c(const void* data, size_t size) {
  const auto& table = Crc32cTable();
  const auto* p = static_cast<const uint8_t*>(data);
  uint32_t crc = 0xffffffffu;
  for (size_t i = 0; i < size; ++i) crc = table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
  return crc ^ 0xffffffffu;
}

uint32_t MaskedCrc32c(const void* data, size_t size) {
  const uint32_t crc = Crc32c(data, size);
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

std::string TfRecord(const std::string& data) {
  std::string out;
  const uint64_t length = data.size();
  Fixed(out, length);
  Fixed(out, MaskedCrc32c(out.data(), sizeof(length)));
  out += data;
  Fixed(out, MaskedCrc32c(data.data(), data.size()));
  return out;
}

std::string ScalarEvent(double wall_time, int64_t step, const std::string& tag, float value) {
  // Summary.Value { string tag = 1; float simple_value = 2; }
  std::string v;
  LengthDelimited(v, 1, tag);
  Varint(v, (2 << 3) | 5);
  Fixed(v, value);
  // Summary { repeated Value value = 1; }
  std::string summary;
  LengthDelimited(summary, 1, v);
  // Event { double wall_time = 1; int64 step = 2; Summary summary = 5; }
  std::string e;
  Varint(e, (1 << 3) | 1);
  Fixed(e, wall_time);
  Varint(e, (2 << 3) | 0);
  Varint(e, static_cast<uint64_t>(step));
  LengthDelimited(e, 5, summary);
  return e;
}

TensorBoardWriter::TensorBoardWriter(const std::string& dir) {
  const double now = Now();
  path_ = fmt::format("{}/events.out.tfevents.{}.loantwin", dir, static_cast<int64_t>(now));
  out_.open(path_, std::ios::binary | std::ios::trunc);
  if (!out_) throw std::runtime_error(path_ + ": cannot open for writing");
  // Event { double wall_time = 1; string file_version = 3; }
  std::string e;
  Varint(e, (1 << 3) | 1);
  Fixed(e, now);
  LengthDelimited(e, 3, "brain.Event:2");
  out_ << TfRecord(e);
}

void TensorBoardWriter::AddScalar(const std::string& tag, float value, int64_t step) {
  out_ << TfRecord(ScalarEvent(Now(), step, tag, value));
}

}  // namespace loantwin
