// listen(2) for the whole shmarray-bridge process, UCX's libraries included (the executable's
// definition comes first in symbol lookup; it is exported with --export-dynamic-symbol): every
// listening socket gets the filter of its thread's ListenerAdmission before it listens
// (listener_admission.hpp), so UCX's listeners never accept a connection unfiltered. Outside a
// ListenerAdmission it admits nobody. The bridge's own --peer-listen uses listen_unfiltered.
#include <cerrno>

#include "listener_admission.hpp"

extern "C" int listen(int fd, int backlog) {
  if (!shmarray::bridge::admit_only(fd, shmarray::bridge::admitted_by_this_thread())) {
    errno = EACCES;
    return -1;
  }
  return shmarray::bridge::listen_unfiltered(fd, backlog);
}
