#include "io/process.h"

#include <gtest/gtest.h>

namespace hl::io {
namespace {

TEST(RunCommand, CapturesStdoutAndExitCode) {
  CommandResult r = run_command({"/bin/echo", "hello", "two words"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out, "hello two words\n");  // no shell: the argument stays one word
  EXPECT_EQ(run_command({"/bin/false"}).exit_code, 1);
}

TEST(RunCommand, CapturesStderrAndFailure) {
  CommandResult r = run_command({"/bin/ls", "/nonexistent-hl-path"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("nonexistent-hl-path"), std::string::npos);
  EXPECT_TRUE(r.out.empty());
}

TEST(RunCommand, MissingProgramExits127) {
  EXPECT_EQ(run_command({"/nonexistent/program"}).exit_code, 127);
}

TEST(RunCommand, NoShellInterpretation) {
  CommandResult r = run_command({"/bin/echo", "$HOME;", "`id`"});
  EXPECT_EQ(r.out, "$HOME; `id`\n");
}

TEST(JoinArgv, JoinsWithSpaces) { EXPECT_EQ(join_argv({"a", "b c"}), "a b c"); }

}  // namespace
}  // namespace hl::io
