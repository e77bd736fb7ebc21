// The message of what a call throws, for tests that check several parts of it.
#pragma once

#include <exception>
#include <string>

namespace {

// What `f` throws, as e.what() ("" if it throws nothing or a non-std exception).
template <class F>
std::string message_of(F&& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {
  }
  return "";
}

}  // namespace
