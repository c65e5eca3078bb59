#pragma once
// Binary save/restore of in-memory state (environment checkpoints). Values are written raw
// (native endianness, for restoring on the same kind of machine); every section starts with a
// tag that is checked on load, so a mismatched or truncated checkpoint is an error, not garbage.

#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

namespace loantwin {

class StateWriter {
 public:
  void Tag(const char* tag) { Raw(tag, std::strlen(tag) + 1); }
  template <typename T>
  void Put(const T& v) {
    static_assert(std::is_trivially_copyable_v<T>, "raw state must be trivially copyable");
    Raw(&v, sizeof(T));
  }
  template <typename T>
  void PutVector(const std::vector<T>& v) {
    static_assert(std::is_trivially_copyable_v<T>, "raw state must be trivially copyable");
    Put<uint64_t>(v.size());
    Raw(v.data(), v.size() * sizeof(T));
  }
  void PutVector(const std::vector<bool>& v) {
    Put<uint64_t>(v.size());
    for (bool b : v) Put<uint8_t>(b);
  }
  const std::string& bytes() const { return bytes_; }

 private:
  void Raw(const void* p, size_t n) { bytes_.append(static_cast<const char*>(p), n); }
  std::string bytes_;
};

class StateReader {
 public:
  StateReader(const char* data, size_t size) : p_(data), end_(data + size) {}
  void Tag(const char* tag) {
    const size_t n = std::strlen(tag) + 1;
    Need(n);
    if (std::memcmp(p_, tag, n) != 0)
      throw std::runtime_error(std::string("checkpoint state: expected section '") + tag + "'");
    p_ += n;
  }
  template <typename T>
  void Get(T* v) {
    static_assert(std::is_trivially_copyable_v<T>, "raw state must be trivially copyable");
    Need(sizeof(T));
    std::memcpy(v, p_, sizeof(T));
    p_ += sizeof(T);
  }
  template <typename T>
  T Get() {
    T v;
    Get(&v);
    return v;
  }
  template <typename T>
  void GetVector(std::vector<T>* v) {
    const uint64_t n = Get<uint64_t>();
    Need(n * sizeof(T));
    v->resize(n);
    if (n > 0) std::memcpy(v->data(), p_, n * sizeof(T));  // data() may be null when empty
    p_ += n * sizeof(T);
  }
  void GetVector(std::vector<bool>* v) {
    const uint64_t n = Get<uint64_t>();
    v->resize(n);
    for (uint64_t i = 0; i < n; ++i) (*v)[i] = Get<uint8_t>() != 0;
  }
  bool done() const { return p_ == end_; }

 private:
  void Need(size_t n) const {
    if (static_cast<size_t>(end_ - p_) < n) throw std::runtime_error("checkpoint state: truncated");
  }
  const char* p_;
  const char* end_;
};

}  // namespace loantwin
