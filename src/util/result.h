// Result<T, E>: a value or an error, for the data path (no exceptions there).
#pragma once

#include <cassert>
#include <type_traits>
#include <utility>
#include <variant>

namespace hl {

// Err<E> wraps an error so that Result<T, E> can be built from it unambiguously.
template <class E>
struct Err {
  // A constructor, not an aggregate: clang 14 lacks C++20 parenthesized
  // aggregate initialization, and Err(e) must build with it (ci/fuzz).
  constexpr Err(E e) : error(std::move(e)) {}  // NOLINT: implicit by design
  E error;
};
template <class E>
Err(E) -> Err<E>;

// Holds either a T (success) or an E (failure). Accessing the wrong side is a
// programming error (asserted in debug builds).
template <class T, class E>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit by design
  Result(Err<E> err) : v_(std::in_place_index<1>, std::move(err.error)) {}  // NOLINT
  // Builds the T in place from args: no temporary T to move (large T on the data path).
  template <class... Args>
  explicit Result(std::in_place_t, Args&&... args)
      : v_(std::in_place_index<0>, std::forward<Args>(args)...) {}

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & { assert(ok()); return std::get<0>(v_); }
  const T& value() const& { assert(ok()); return std::get<0>(v_); }
  T&& value() && { assert(ok()); return std::get<0>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

  const E& error() const { assert(!ok()); return std::get<1>(v_); }

 private:
  std::variant<T, E> v_;
};

}  // namespace hl
