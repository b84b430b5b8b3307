#pragma once
// Tells the broker what the mirror links know (MirrorStatusBoard), over the bridge's own session
// (Client::report_mirrors): at most every 200 ms when something changed, and every 2 s anyway
// (so lags in ms keep moving while a link is stuck).
#include <string>

#include "mirror_status.hpp"

namespace shmarray::bridge {

class MirrorReporter {
 public:
  MirrorReporter(std::string broker_socket, MirrorStatusBoard& board)
      : socket_(std::move(broker_socket)), board_(board) {}
  // Runs until g_stopping.
  void run();

 private:
  std::string socket_;
  MirrorStatusBoard& board_;
};

}  // namespace shmarray::bridge
