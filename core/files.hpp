// For the readers and writers of files from outside (IDX, safetensors): a
// path that is not a regular file is refused before it is opened, because
// opening a FIFO waits for the other end and a device may never end.
#pragma once

#include <sys/types.h>

namespace tg {

// What a path that is neither a regular file nor a directory is, for a
// message: "a FIFO", "a character device", "a block device", "a socket", or
// "a special file".
const char* special_file_kind(mode_t mode);

}  // namespace tg
