// run_command: runs a program with an argument vector (fork/execve, no shell). Setup only.
#pragma once

#include <string>
#include <vector>

namespace hl::io {

// Outcome of a finished command: exit status (128+signal if killed) and what it wrote.
struct CommandResult {
  int exit_code = -1;
  std::string out;  // standard output
  std::string err;  // standard error
};

// Runs argv[0] (an absolute path) with `argv`, an empty environment but PATH,
// and waits for it. Throws std::system_error if it cannot be started.
CommandResult run_command(const std::vector<std::string>& argv);

// argv joined with spaces, for messages and --print-rules (no quoting).
std::string join_argv(const std::vector<std::string>& argv);

}  // namespace hl::io
