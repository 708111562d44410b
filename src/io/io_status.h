// IoError / IoStatus: the error vocabulary of the I/O layer's data path.
#pragma once

#include <variant>

#include "util/result.h"

namespace hl::io {

// A failed system or library call: errno at the failure and a static label
// naming the call (never owned, never null).
struct IoError {
  int err_no = 0;
  const char* what = "";
};

// Success carries nothing; failure carries an IoError.
using IoStatus = Result<std::monostate, IoError>;

// The success value of an IoStatus.
inline IoStatus io_ok() { return IoStatus(std::monostate{}); }

// A failure IoStatus from errno-style code `err_no` and static label `what`.
inline IoStatus io_fail(int err_no, const char* what) { return Err(IoError{err_no, what}); }

}  // namespace hl::io
