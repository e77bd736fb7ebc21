#include "losses.hpp"

#include <sstream>

namespace tg::nn {

std::string detail::loss_setting(const char* name, double value) {
  std::ostringstream os;
  os << ", " << name << "=" << value;
  return os.str();
}

namespace {
std::string class_settings(const Tensor& weight, std::int64_t ignore_index) {
  return (weight.defined() ? ", weight=" + shape_str(weight.shape()) : std::string()) +
         (ignore_index == -100 ? "" : ", ignore_index=" + std::to_string(ignore_index));
}
}  // namespace

std::string NLLLossImpl::describe() const {
  return LossModule::describe() + class_settings(options.weight(), options.ignore_index());
}

std::string CrossEntropyLossImpl::describe() const {
  return LossModule::describe() + class_settings(options.weight(), options.ignore_index()) +
         (options.label_smoothing() == 0.0 ? "" : detail::loss_setting("label_smoothing", options.label_smoothing()));
}

}  // namespace tg::nn
