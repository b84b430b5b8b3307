#pragma once
// Logging format for where stderr goes. On a terminal or in a file each line carries its own
// timestamp, process name and pid. Under systemd with stderr connected to the journal
// ($JOURNAL_STREAM names stderr's device:inode), journald records the time, the unit and the pid
// itself, so lines carry only a syslog priority prefix ("<3>" for errors, read by journald's
// SyslogLevelPrefix=) and the message: `journalctl -u shmarrayd -p warning` filters by level and
// no timestamp is printed twice.
#include <string>

namespace shmarray::server {

// True when $JOURNAL_STREAM is set and names the file stderr is (journald's check).
[[nodiscard]] bool stderr_is_journal();

// The spdlog pattern for stderr: "<prio>message" for the journal, else
// "YYYY-mm-dd HH:MM:SS.mmm shmarrayd[pid] level: message".
[[nodiscard]] std::string stderr_log_pattern(bool journal);

// Sets the default logger (stderr) with stderr_log_pattern(stderr_is_journal()); `%*` in a
// pattern is the syslog priority of the message's level.
void configure_stderr_logging(const std::string& level);

}  // namespace shmarray::server
