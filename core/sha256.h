#pragma once
// SHA-256 (FIPS 180-4), for the audit log's hash chain: streaming (Update/Final, copyable so a
// midstate can be reused) and one-shot hex digests. Uses the x86 SHA extensions when the CPU
// has them (checked at run time), the portable rounds otherwise; both give the same digests.

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace loantwin {

class Sha256 {
 public:
  Sha256();
  void Update(std::string_view data);
  /// The digest as 64 lowercase hex digits; the object is spent afterwards.
  std::string FinalHex();

  /// Whether the SHA extensions are used on this CPU.
  static bool Accelerated();
  /// Tests only: force the portable rounds (false) or the detected implementation (true).
  static void UseAcceleration(bool on);

 private:
  void Blocks(const uint8_t* p, size_t blocks);
  std::array<uint32_t, 8> h_;
  std::array<uint8_t, 64> buf_{};
  size_t buffered_ = 0;
  uint64_t length_ = 0;
};

std::string Sha256Hex(std::string_view data);

}  // namespace loantwin
