#pragma once
// The second error tier: internal invariants. Config, file and API boundaries throw
// ConfigError / std::invalid_argument with messages a user can act on; a broken invariant inside
// the library is a bug and is reported by these macros with the expression, both values and
// file:line:
//
//   LT_CHECK(size_ > 0);              // "core/x.cc:12: check failed: size_ > 0"
//   LT_CHECK_EQ(rows, batch.n);       // "... check failed: rows == batch.n (3 vs 4)"
//   LT_DCHECK_LT(i, capacity_);       // the same, compiled only without NDEBUG (hot loops)
//
// A failed check throws loantwin::CheckError (a std::logic_error): a server answers 500 and keeps
// serving, a trainer stops without writing a checkpoint. Values are printed with fmt when they
// are formattable.

#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace loantwin {

/// A broken internal invariant (a bug in loantwin, not bad input).
class CheckError : public std::logic_error {
 public:
  using std::logic_error::logic_error;
};

namespace check_internal {

[[noreturn]] void Fail(const char* file, int line, const char* expression,
                       const std::string& values);

template <typename T>
std::string Show(const T& v) {
  if constexpr (fmt::is_formattable<T>::value)
    return fmt::format("{}", v);
  else
    return "<unprintable>";
}

template <typename A, typename B>
[[noreturn]] void FailOp(const char* file, int line, const char* expression, const A& a,
                         const B& b) {
  Fail(file, line, expression, "(" + Show(a) + " vs " + Show(b) + ")");
}

}  // namespace check_internal
}  // namespace loantwin

#define LT_CHECK(cond)                                                            \
  do {                                                                            \
    if (!(cond)) ::loantwin::check_internal::Fail(__FILE__, __LINE__, #cond, ""); \
  } while (0)

#define LT_CHECK_OP_(op, a, b)                                                               \
  do {                                                                                       \
    const auto& lt_check_a_ = (a);                                                           \
    const auto& lt_check_b_ = (b);                                                           \
    if (!(lt_check_a_ op lt_check_b_))                                                       \
      ::loantwin::check_internal::FailOp(__FILE__, __LINE__, #a " " #op " " #b, lt_check_a_, \
                                         lt_check_b_);                                       \
  } while (0)

#define LT_CHECK_EQ(a, b) LT_CHECK_OP_(==, a, b)
#define LT_CHECK_NE(a, b) LT_CHECK_OP_(!=, a, b)
#define LT_CHECK_LT(a, b) LT_CHECK_OP_(<, a, b)
#define LT_CHECK_LE(a, b) LT_CHECK_OP_(<=, a, b)
#define LT_CHECK_GT(a, b) LT_CHECK_OP_(>, a, b)
#define LT_CHECK_GE(a, b) LT_CHECK_OP_(>=, a, b)

#ifdef NDEBUG
// Compiled out, but the expressions still type-check.
#define LT_DCHECK(cond)        \
  do {                         \
    if (false) LT_CHECK(cond); \
  } while (0)
#define LT_DCHECK_OP_(op, a, b)        \
  do {                                 \
    if (false) LT_CHECK_OP_(op, a, b); \
  } while (0)
#else
#define LT_DCHECK(cond) LT_CHECK(cond)
#define LT_DCHECK_OP_(op, a, b) LT_CHECK_OP_(op, a, b)
#endif
#define LT_DCHECK_EQ(a, b) LT_DCHECK_OP_(==, a, b)
#define LT_DCHECK_NE(a, b) LT_DCHECK_OP_(!=, a, b)
#define LT_DCHECK_LT(a, b) LT_DCHECK_OP_(<, a, b)
#define LT_DCHECK_LE(a, b) LT_DCHECK_OP_(<=, a, b)
#define LT_DCHECK_GT(a, b) LT_DCHECK_OP_(>, a, b)
#define LT_DCHECK_GE(a, b) LT_DCHECK_OP_(>=, a, b)
