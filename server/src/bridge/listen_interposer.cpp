// listen(2) for the whole shmarray-bridge process, UCX's libraries included (the executable's
// definition comes first in symbol lookup; it is exported with --export-dynamic-symbol): every
// listening socket gets the filter of its thread's ListenerAdmission before it listens, and is
// recorded there (listener_admission.hpp), so UCX's listeners never accept a connection
// unfiltered. Outside a ListenerAdmission it admits nobody (locked). The bridge's own
// --peer-listen uses listen_unfiltered.
#include <cerrno>

#include "listener_admission.hpp"

extern "C" int listen(int fd, int backlog) {
  using namespace shmarray::bridge;
  ListenerAdmission* admission = admission_of_this_thread();
  const bool filtered = admission != nullptr ? admit_only(fd, admission->admitted(), false)
                                                   .has_value()
                                             : admit_only(fd, Admitted{}, true).has_value();
  if (!filtered) {
    errno = EACCES;
    return -1;
  }
  if (admission != nullptr) admission->note_listener(fd);
  return listen_unfiltered(fd, backlog);
}
