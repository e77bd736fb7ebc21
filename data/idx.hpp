// IDX files, the format of MNIST and Fashion-MNIST, read with every check a
// file from outside deserves, and the DataError every data file problem
// throws.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "../core/error.hpp"

namespace tg::data {

// A data file that cannot be opened or read (missing, not a regular file,
// too large for this machine's memory), is not a valid IDX file (bad
// magic, unsupported type, bad dimension count, truncated, trailing bytes,
// sizes that overflow or that the file cannot hold, a corrupt gzip stream),
// or that does not make a
// dataset (wrong dimensionality, image and label counts differ, a label out
// of range, a dataset file missing).
class DataError : public Error {
 public:
  using Error::Error;
};

// The format (http://yann.lecun.com/exdb/mnist/): two zero bytes, a type byte,
// a dimension-count byte, one big-endian uint32 size per dimension, then the
// elements in row-major order. Only type 0x08 (unsigned byte), the one every
// MNIST-style file uses, is supported.

struct IdxArray {
  Shape shape;                     // 1 to 4 sizes
  std::vector<std::uint8_t> data;  // row-major, product of shape bytes

  bool operator==(const IdxArray& other) const { return shape == other.shape && data == other.data; }
  bool operator!=(const IdxArray& other) const { return !(*this == other); }
};

// Reads an IDX file, gzip-compressed (recognised by its 0x1f 0x8b magic, not
// by the name) or plain. Everything is checked: that the path is a regular
// file (a FIFO or device is refused, not waited on), the magic, the type
// byte, a dimension count of 1 to 4, the product of the sizes (overflow, and
// that it equals the number of data bytes exactly: neither truncated nor
// followed by trailing bytes), the gzip stream's integrity. The header is
// read and checked first; the declared size is then checked against the
// file's (a plain file's size exactly, a gzip file's times deflate's maximum
// ratio of 1032) and against the machine's memory before anything is
// allocated, and the data is read in bounded pieces: a small file cannot make
// the reader hold more than it declares. Throws DataError naming the file and
// the problem ("<path>: truncated: expected 47040000 bytes of data, found
// 1000").
IdxArray read_idx(const std::string& path);

// Writes `array` as an IDX file of type 0x08, gzip-compressed when `gzip`.
// Throws tg::ShapeError if the shape has not 1 to 4 sizes, a size does not fit
// in 32 bits, or data does not hold the shape's number of elements; DataError
// if the file cannot be written.
void write_idx(const std::string& path, const IdxArray& array, bool gzip = false);

}  // namespace tg::data
