// TG_ARG: one option of a layer's options struct, with a chainable setter and
// a getter of the same name, as libtorch's TORCH_ARG:
//   Conv2dOptions(1, 32, 5).padding(2).bias(false); options.padding().
#pragma once

#define TG_ARG(T, name)                              \
 public:                                             \
  auto& name(const T& value) {                       \
    name##_ = value;                                 \
    return *this;                                    \
  }                                                  \
  const T& name() const noexcept { return name##_; } \
                                                     \
 private:                                            \
  T name##_
