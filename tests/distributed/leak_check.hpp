// Open MPI unloads its components in MPI_Finalize, and what they hold until
// exit then looks to LeakSanitizer like leaks from "<unknown module>", which
// no suppression can name. In the sanitizer build the MPI test programs
// therefore check for leaks just before MPI_Finalize, while Open MPI's
// allocations are still reachable; that check also replaces the one at exit.
// Declare a LeakCheckBeforeFinalize right after the Environment, so that it
// runs once everything declared after it has been destroyed.
#pragma once

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TAPEGRAD_LEAK_CHECK 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define TAPEGRAD_LEAK_CHECK 1
#endif

#ifdef TAPEGRAD_LEAK_CHECK
#include <sanitizer/lsan_interface.h>
#endif

struct LeakCheckBeforeFinalize {
  LeakCheckBeforeFinalize() = default;
  LeakCheckBeforeFinalize(const LeakCheckBeforeFinalize&) = delete;
  LeakCheckBeforeFinalize& operator=(const LeakCheckBeforeFinalize&) = delete;
  ~LeakCheckBeforeFinalize() {
#ifdef TAPEGRAD_LEAK_CHECK
    __lsan_do_leak_check();
#endif
  }
};
