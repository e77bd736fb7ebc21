// safetensors: round trips to the bit, modules, the format checked both ways
// against an independent Python reader and writer (safetensors_check.py, next
// to this file), and every kind of corrupt file written by hand, byte by byte.
#include <doctest/doctest.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <tapegrad/nn/serialize.hpp>
#include <tapegrad/tapegrad.hpp>

#include "special_files.hpp"
#include "temp_dir.hpp"

namespace fs = std::filesystem;
namespace nn = tg::nn;
namespace io = tg::io;
using tg::Shape;

namespace {

constexpr double kPi = 3.141592653589793;  // Python's math.pi


void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  REQUIRE(out.good());
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

std::string le64(std::uint64_t n) {
  std::string out;
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  return out;
}

// A safetensors file by hand: the header's length, the header, the data.
std::string st_file(const std::string& header, const std::string& data = "") {
  return le64(header.size()) + header + data;
}

// An unsigned integer type of N bytes.
template <std::size_t N>
using UInt = std::conditional_t<N == 1, std::uint8_t, std::conditional_t<N == 4, std::uint32_t, std::uint64_t>>;

// One well-formed entry.
std::string entry(const std::string& name, const std::string& dtype, const std::string& shape, std::uint64_t begin,
                  std::uint64_t end) {
  return "\"" + name + "\":{\"dtype\":\"" + dtype + "\",\"shape\":" + shape + ",\"data_offsets\":[" +
         std::to_string(begin) + "," + std::to_string(end) + "]}";
}

// The little-endian bytes of the elements, whatever the host's byte order.
template <class T>
std::string le_bytes(const xt::xarray<T>& values) {
  using Bits = UInt<sizeof(T)>;
  std::string out;
  for (const T v : values) {
    Bits bits;
    std::memcpy(&bits, &v, sizeof bits);
    for (std::size_t i = 0; i < sizeof bits; ++i) out.push_back(static_cast<char>((bits >> (8 * i)) & 0xff));
  }
  return out;
}

std::uint32_t crc32(const std::string& bytes) {
  std::uint32_t crc = 0xffffffffu;
  for (const char c : bytes) {
    crc ^= static_cast<unsigned char>(c);
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1u)));
  }
  return ~crc;
}

// Same shape and the same bits, element for element (NaN payloads, -0.0).
template <class T>
bool same_bits(const xt::xarray<T>& a, const xt::xarray<T>& b) {
  if (a.shape() != b.shape()) return false;
  return a.size() == 0 || std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

// The same for a tensor, which must hold T elements.
template <class T>
bool same_bits(const tg::Tensor& a, const xt::xarray<T>& b) {
  return a.dtype() == tg::dtype_of<T>() && same_bits(a.to_xarray<T>(), b);
}

// Two tensors: the same dtype, shape and bits.
bool same_bits(const tg::Tensor& a, const tg::Tensor& b) {
  if (a.dtype() != b.dtype()) return false;
  return tg::visit_dtype(a.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    return same_bits(a.to_xarray<T>(), b.to_xarray<T>());
  });
}

template <class T>
T from_bits(UInt<sizeof(T)> bits) {
  T v;
  std::memcpy(&v, &bits, sizeof v);
  return v;
}

std::string quote_for_shell(const std::string& s) {
  std::string out = "'";
  for (const char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

struct ScriptRun {
  int status;
  std::string output;  // stdout and stderr
};

// python3 safetensors_check.py <mode> <file>
ScriptRun run_script(const TempDir& dir, const std::string& mode, const std::string& file) {
  const fs::path script = fs::path(__FILE__).parent_path() / "safetensors_check.py";
  REQUIRE_MESSAGE(fs::exists(script), "not found: ", script.string());
  const std::string output = dir / "script-output.txt";
  const std::string command = "PYTHONIOENCODING=utf-8 python3 " + quote_for_shell(script.string()) + " " + mode +
                              " " + quote_for_shell(file) + " > " + quote_for_shell(output) + " 2>&1";
  const int status = std::system(command.c_str());
  return {status, read_bytes(output)};
}

std::vector<std::string> split(const std::string& text, char sep) {
  std::vector<std::string> out;
  std::string part;
  std::istringstream in(text);
  while (std::getline(in, part, sep)) out.push_back(part);
  return out;
}

// A module with two parameters and a buffer, and a child with one of each:
// parameters weight, bias, inner.scale; buffers running, inner.count. All
// float32; module.to(kFloat64) makes the float64 one.
struct Leaf : nn::Module {
  explicit Leaf(tg::Generator& gen) {
    register_parameter("scale", tg::randn({1}, gen));
    register_buffer("count", tg::scalar_tensor(gen.uniform() * 10));
  }
  tg::Tensor forward(const tg::Tensor& x) override { return x; }
  std::string type_name() const override { return "Leaf"; }
};

struct Tiny : nn::Module {
  std::shared_ptr<Leaf> inner;
  explicit Tiny(tg::Generator& gen, const Shape& weight_shape = {2, 3}) {
    register_parameter("weight", tg::randn(weight_shape, gen));
    register_parameter("bias", tg::randn({3}, gen), /*requires_grad=*/false);
    register_buffer("running", tg::randn({3}, gen));
    inner = register_module("inner", std::make_shared<Leaf>(gen));
  }
  tg::Tensor forward(const tg::Tensor& x) override { return x; }
  std::string type_name() const override { return "Tiny"; }
};

nn::Module::Named<tg::Tensor> state_of(const nn::Module& m) {
  auto named = m.named_parameters();
  for (auto& b : m.named_buffers()) named.push_back(b);
  return named;
}

// Copies of every parameter's and buffer's value, to compare with later.
std::vector<tg::Tensor> values_of(const nn::Module& m) {
  std::vector<tg::Tensor> out;
  for (const auto& named : state_of(m)) out.push_back(named.second.clone());
  return out;
}

}  // namespace

// ============================================================================
// tensors
// ============================================================================

TEST_CASE("save_tensors / load_tensors round-trip float and double tensors to the bit") {
  TempDir dir;
  tg::Generator gen(3);
  const float nan_payload = from_bits<float>(0x7fc01234u);
  const double dnan_payload = from_bits<double>(0xfff8000000abcdefull);
  const tg::Tensor special(xt::xarray<float>{-0.0f, 0.0f, std::numeric_limits<float>::infinity(),
                                             -std::numeric_limits<float>::infinity(), nan_payload,
                                             std::numeric_limits<float>::denorm_min(),
                                             std::numeric_limits<float>::max(), std::numeric_limits<float>::lowest(),
                                             0.1f});
  const tg::Tensor cube = tg::randn({2, 3, 4}, gen);
  const tg::Tensor scalar(xt::xarray<float>(2.5f));
  const tg::Tensor empty = tg::zeros({0, 5});
  const tg::Tensor matrix = tg::randn({3, 2}, gen, 0.0, 1.0, tg::kFloat64);
  const tg::Tensor dscalar = tg::scalar_tensor(kPi, tg::kFloat64);
  const tg::Tensor dempty = tg::zeros({0}, tg::kFloat64);
  const tg::Tensor dspecial(xt::xarray<double>{-0.0, dnan_payload, std::numeric_limits<double>::denorm_min(),
                                                 std::numeric_limits<double>::max(), 0.1});

  const std::string path = dir / "mixed.safetensors";
  const nn::Metadata metadata{{"epoch", "3"}, {"note", "größe und ümlaut"}};
  io::save_tensors(path,
                   {{"special", special},
                    {"cube", cube},
                    {"scalar", scalar},
                    {"empty", empty},
                    {"matrix", matrix},
                    {"dscalar", dscalar},
                    {"dempty", dempty},
                    {"dspecial", dspecial},
                    {"a.dotted/name with spaces", cube}},
                   metadata);

  const io::TensorFile file = io::load_tensors(path);
  CHECK(file.path == path);
  CHECK(file.metadata == metadata);
  REQUIRE(file.tensors.size() == 9);
  const std::vector<std::string> order{"special", "cube",   "scalar",   "empty", "matrix",
                                       "dscalar", "dempty", "dspecial", "a.dotted/name with spaces"};
  for (std::size_t i = 0; i < order.size(); ++i) {
    CHECK(file.tensors[i].name == order[i]);
    CHECK(file.tensors[i].loaded());
  }
  CHECK(file.at("special").dtype == "F32");
  CHECK(file.at("matrix").dtype == "F64");
  CHECK(file.at("scalar").shape == Shape{});
  CHECK(file.at("empty").shape == Shape{0, 5});
  CHECK(file.at("cube").shape == Shape{2, 3, 4});

  CHECK(same_bits(file.get("special"), special));  // the dtype too
  CHECK(same_bits(file.get("cube"), cube));
  CHECK(same_bits(file.get("scalar"), scalar));
  CHECK(file.get("scalar").dim() == 0);
  CHECK(same_bits(file.get("empty"), empty));
  CHECK(same_bits(file.get("matrix"), matrix));
  CHECK(same_bits(file.get("dscalar"), dscalar));
  CHECK(same_bits(file.get("dempty"), dempty));
  CHECK(same_bits(file.get("dspecial"), dspecial));
  CHECK(same_bits(file.get("a.dotted/name with spaces"), cube));
  CHECK(same_bits(file.get("cube", tg::kFloat32), cube));
  CHECK(same_bits(file.get("matrix", tg::kFloat64), matrix));
  CHECK_FALSE(file.get("cube").requires_grad());
  CHECK_FALSE(file.get("cube").same(cube));  // a new tensor

  // The layout: header length a multiple of 8, JSON padded with spaces, then
  // exactly the data.
  const std::string bytes = read_bytes(path);
  REQUIRE(bytes.size() >= 8);
  std::uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(bytes[i]);
  CHECK(n % 8 == 0);
  const std::string header = bytes.substr(8, n);
  CHECK(header.front() == '{');
  CHECK(header.substr(0, 15) == "{\"__metadata__\"");
  CHECK(header.find_last_not_of(' ') == header.rfind('}'));
  CHECK(header.size() - header.rfind('}') - 1 < 8);
  const std::size_t data_bytes = 4 * (special.numel() + 2 * cube.numel() + 1) + 8 * (matrix.numel() + 1 + 5);
  CHECK(bytes.size() == 8 + n + data_bytes);
  CHECK(bytes.substr(8 + n, 4 * special.numel()) == le_bytes(special.to_xarray<float>()));

  // A vector like the one named_parameters() returns, and an existing file
  // is overwritten.
  const std::vector<std::pair<std::string, tg::Tensor>> doubles{{"x", matrix}, {"y", dscalar}};
  io::save_tensors(path, doubles);
  const io::TensorFile again = io::load_tensors(path);
  REQUIRE(again.tensors.size() == 2);
  CHECK(again.metadata.empty());
  CHECK(same_bits(again.get("y"), dscalar));
  CHECK(read_bytes(path).find("__metadata__") == std::string::npos);

  // No tensors at all: "{}" padded to 8 bytes.
  io::save_tensors(path, std::vector<std::pair<std::string, tg::Tensor>>{});
  CHECK(read_bytes(path) == le64(8) + "{}      ");
  CHECK(io::load_tensors(path).tensors.empty());
}

TEST_CASE("save_tensors / load_tensors round-trip I64 and BOOL tensors exactly") {
  TempDir dir;
  const std::int64_t lo = std::numeric_limits<std::int64_t>::min(), hi = std::numeric_limits<std::int64_t>::max();
  const xt::xarray<std::int64_t> int_values{{lo, -1, 0}, {1, (std::int64_t{1} << 53) + 1, hi}};
  const tg::Tensor ints(int_values);
  const tg::Tensor int_scalar = tg::scalar_tensor(-42, tg::kInt64);
  const tg::Tensor int_empty = tg::zeros({0, 3}, tg::kInt64);
  const xt::xarray<bool> bool_values{{true, false}, {false, true}, {true, true}};
  const tg::Tensor bools(bool_values);
  const tg::Tensor bool_scalar = tg::scalar_tensor(1, tg::kBool);
  const tg::Tensor bool_empty = tg::zeros({2, 0}, tg::kBool);
  const tg::Tensor mixed_float = tg::ones({2});
  REQUIRE(ints.dtype() == tg::kInt64);
  REQUIRE(bools.dtype() == tg::kBool);

  const std::string path = dir / "ints.safetensors";
  io::save_tensors(path, {{"ints", ints},
                          {"bools", bools},
                          {"int_scalar", int_scalar},
                          {"bool_scalar", bool_scalar},
                          {"int_empty", int_empty},
                          {"bool_empty", bool_empty},
                          {"float", mixed_float}});
  const io::TensorFile file = io::load_tensors(path);
  REQUIRE(file.tensors.size() == 7);
  CHECK(file.at("ints").dtype == "I64");
  CHECK(file.at("bools").dtype == "BOOL");
  CHECK(file.at("int_scalar").dtype == "I64");
  CHECK(file.at("bool_empty").dtype == "BOOL");
  CHECK(file.at("float").dtype == "F32");
  CHECK(file.at("bools").shape == Shape{3, 2});
  for (const auto& t : file.tensors) CHECK(t.loaded());
  CHECK(same_bits(file.get("ints"), int_values));
  CHECK(same_bits(file.get("ints", tg::kInt64), ints));
  CHECK(same_bits(file.get("bools"), bool_values));
  CHECK(same_bits(file.get("bools", tg::kBool), bools));
  CHECK(same_bits(file.get("int_scalar"), int_scalar));
  CHECK(file.get("int_scalar").dim() == 0);
  CHECK(file.get("int_scalar").item<std::int64_t>() == -42);
  CHECK(same_bits(file.get("bool_scalar"), bool_scalar));
  CHECK(same_bits(file.get("int_empty"), int_empty));
  CHECK(same_bits(file.get("bool_empty"), bool_empty));
  CHECK(same_bits(file.get("float"), mixed_float));
  CHECK_FALSE(file.get("ints").requires_grad());

  // The bytes: int64 little-endian, one byte 0 or 1 per bool, back to back.
  const std::string bytes = read_bytes(path);
  std::uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(bytes[i]);
  CHECK(bytes.size() == 8 + n + 8 * 6 + 6 + 8 + 1 + 4 * 2);
  CHECK(bytes.substr(8 + n, 48) == le_bytes(int_values));
  CHECK(bytes.substr(8 + n + 48, 6) == std::string("\1\0\0\1\1\1", 6));
  CHECK(bytes.substr(8 + n + 54, 8) == le_bytes(xt::xarray<std::int64_t>{-42}));
  CHECK(bytes.substr(8 + n + 62, 1) == std::string("\1", 1));
  CHECK(bytes.find(R"("bools":{"dtype":"BOOL","shape":[3,2],"data_offsets":[48,54]})") != std::string::npos);
}

TEST_CASE("save_tensors writes a strided view as its elements in row-major order") {
  TempDir dir;
  tg::Generator gen(4);
  const tg::Tensor cube = tg::randn({2, 3, 4}, gen);
  const tg::Tensor swapped = cube.transpose(0, 2);  // (4, 3, 2), strided
  const tg::Tensor column = cube.select(2, 1);      // (2, 3), strided
  const tg::Tensor int_view = tg::arange(0, 12, 1, tg::kInt64).reshape({3, 4}).t();
  REQUIRE_FALSE(swapped.is_contiguous());
  REQUIRE_FALSE(int_view.is_contiguous());
  const std::string path = dir / "views.safetensors";
  io::save_tensors(path, {{"swapped", swapped}, {"column", column}, {"ints", int_view}});
  const io::TensorFile file = io::load_tensors(path);
  CHECK(file.at("swapped").shape == Shape{4, 3, 2});
  CHECK(same_bits(file.get("swapped"), swapped.to_xarray<float>()));
  CHECK(same_bits(file.get("column"), column.to_xarray<float>()));
  CHECK(same_bits(file.get("ints"), int_view.to_xarray<std::int64_t>()));
  CHECK(file.get("ints").to_xarray<std::int64_t>()(1, 2) == 9);  // element (2, 1) of the 3x4 before .t()
  CHECK(file.get("swapped").is_contiguous());
}

TEST_CASE("a BOOL byte other than 0 or 1 is a FormatError naming the tensor and element") {
  TempDir dir;
  const std::string path = dir / "corrupt.safetensors";
  write_bytes(path, st_file("{" + entry("ok", "BOOL", "[2]", 0, 2) + "," + entry("m", "BOOL", "[3]", 2, 5) + "}",
                            std::string("\1\0\1\2\0", 5)));
  CHECK_THROWS_WITH_AS(io::load_tensors(path),
                       doctest::Contains((path + ": tensor \"m\": BOOL element 1 is byte 2, not 0 or 1").c_str()),
                       io::FormatError);
  write_bytes(path, st_file("{" + entry("m", "BOOL", "[1]", 0, 1) + "}", std::string("\xff", 1)));
  CHECK_THROWS_WITH_AS(io::load_tensors(path), doctest::Contains("BOOL element 0 is byte 255, not 0 or 1"),
                       io::FormatError);
  // Into a module: refused before anything is copied.
  struct Masked : nn::Module {
    Masked() {
      register_buffer("a", tg::ones({1}));
      register_buffer("m", tg::zeros({1}, tg::kBool));
    }
    tg::Tensor forward(const tg::Tensor& x) override { return x; }
    std::string type_name() const override { return "Masked"; }
  } masked;
  write_bytes(path, st_file("{" + entry("a", "F32", "[1]", 0, 4) + "," + entry("m", "BOOL", "[1]", 4, 5) + "}",
                            le_bytes(xt::xarray<float>{5.0f}) + std::string("\3", 1)));
  CHECK_THROWS_WITH_AS(nn::load(masked, path), doctest::Contains("tensor \"m\": BOOL element 0 is byte 3"),
                       io::FormatError);
  CHECK(masked.find("a").item<float>() == 1.0f);
}

TEST_CASE("SafetensorsReader lists the header and reads one tensor at a time") {
  TempDir dir;
  const std::string path = dir / "lazy.safetensors";
  // "a" is readable F32, "i" an I32 tapegrad lists but does not read, "m" a
  // BOOL with a bad byte that only reading it can find.
  write_bytes(path, st_file("{\"__metadata__\":{\"k\":\"v\"}," + entry("a", "F32", "[2]", 0, 8) + "," +
                                entry("i", "I32", "[1]", 8, 12) + "," + entry("m", "BOOL", "[1]", 12, 13) + "}",
                            le_bytes(xt::xarray<float>{1.5f, -2.0f}) + std::string("\0\0\0\0\7", 5)));
  io::SafetensorsReader reader(path);
  CHECK(reader.path() == path);
  CHECK(reader.metadata() == io::Metadata{{"k", "v"}});
  REQUIRE(reader.entries().size() == 3);
  CHECK(reader.entries()[1].name == "i");
  CHECK(reader.entries()[1].dtype == "I32");
  CHECK(reader.entries()[1].shape == tg::Shape{1});
  CHECK(reader.entries()[1].begin == 8);
  CHECK(reader.entries()[1].end == 12);
  CHECK(reader.find("absent") == nullptr);
  const tg::Tensor a = reader.read(*reader.find("a"));
  CHECK(a.dtype() == tg::kFloat32);
  CHECK(a.data<float>()[0] == 1.5f);
  CHECK(a.data<float>()[1] == -2.0f);
  CHECK_THROWS_WITH_AS(reader.read(*reader.find("i")), doctest::Contains("tensor \"i\" is I32, whose values are not read"),
                       io::MismatchError);
  CHECK_THROWS_WITH_AS(reader.read(*reader.find("m")), doctest::Contains("BOOL element 0 is byte 7"), io::FormatError);
  // Reading all of it, as load_tensors does, meets the bad byte.
  CHECK_THROWS_AS(io::load_tensors(path), io::FormatError);
  // The header's checks come first, at construction.
  write_bytes(path, st_file("{" + entry("a", "F32", "[2]", 0, 8) + "}", std::string(4, '\0')));
  CHECK_THROWS_WITH_AS(io::SafetensorsReader{path}, doctest::Contains("truncated data section"), io::FormatError);
}

TEST_CASE("TensorFile::get and at check the name and the dtype") {
  TempDir dir;
  const std::string path = dir / "t.safetensors";
  io::save_tensors(path, {{"f", tg::ones({2})},
                          {"d", tg::ones({2}, tg::kFloat64)},
                          {"i", tg::ones({2}, tg::kInt64)},
                          {"b", tg::ones({2}, tg::kBool)}});
  const io::TensorFile file = io::load_tensors(path);
  CHECK(file.contains("f"));
  CHECK_FALSE(file.contains("g"));
  CHECK_THROWS_WITH_AS(file.at("g"), doctest::Contains((path + ": no tensor named \"g\"").c_str()), io::MismatchError);
  CHECK_THROWS_WITH_AS(file.get("g"), doctest::Contains("no tensor named \"g\""), io::MismatchError);
  CHECK_THROWS_WITH_AS(file.get("g", tg::kFloat32), doctest::Contains("no tensor named \"g\""), io::MismatchError);
  CHECK_THROWS_WITH_AS(file.get("f", tg::kFloat64),
                       doctest::Contains((path + ": tensor \"f\" is F32, not F64").c_str()), io::MismatchError);
  CHECK_THROWS_WITH_AS(file.get("d", tg::kFloat32), doctest::Contains("tensor \"d\" is F64, not F32"), io::MismatchError);
  CHECK_THROWS_WITH_AS(file.get("i", tg::kFloat32), doctest::Contains("tensor \"i\" is I64, not F32"), io::MismatchError);
  CHECK_THROWS_WITH_AS(file.get("b", tg::kInt64), doctest::Contains("tensor \"b\" is BOOL, not I64"), io::MismatchError);
  CHECK(file.get("f", tg::kFloat32).dtype() == tg::kFloat32);
  CHECK(file.get("d", tg::kFloat64).dtype() == tg::kFloat64);
  CHECK(file.get("i", tg::kInt64).dtype() == tg::kInt64);
  CHECK(file.get("b", tg::kBool).dtype() == tg::kBool);
}

TEST_CASE("a file may hold dtypes tapegrad does not load: listed, not read") {
  TempDir dir;
  const std::string path = dir / "ints.safetensors";
  const std::string header =
      R"({"counts":{"dtype":"I32","shape":[2],"data_offsets":[0,8]},)"
      R"("half":{"dtype":"BF16","shape":[1],"data_offsets":[8,10]},)"
      R"("w":{"dtype":"F32","shape":[1],"data_offsets":[10,14]}})";
  write_bytes(path, st_file(header, std::string("\x07\0\0\0\xff\xff\xff\xff\x80\x3f", 10) + le_bytes(xt::xarray<float>{1.5f})));
  const io::TensorFile file = io::load_tensors(path);
  REQUIRE(file.tensors.size() == 3);
  CHECK(file.at("counts").dtype == "I32");
  CHECK(file.at("counts").shape == Shape{2});
  CHECK_FALSE(file.at("counts").loaded());
  CHECK_FALSE(file.at("half").loaded());
  CHECK(file.get("w").item<float>() == 1.5f);
  CHECK_THROWS_WITH_AS(file.get("counts", tg::kFloat32),
                       doctest::Contains("tensor \"counts\" is I32, not F32 (only F32, F64, I64 and BOOL values are read)"),
                       io::MismatchError);
  CHECK_THROWS_WITH_AS(file.get("half"),
                       doctest::Contains((path + ": tensor \"half\" is BF16, whose values are not read (only F32, F64, "
                                                 "I64 and BOOL are)").c_str()),
                       io::MismatchError);

  // A module wanting one of them: a dtype mismatch, whatever the module's dtype.
  struct One : nn::Module {
    One() { register_parameter("counts", tg::zeros({2})); }
    tg::Tensor forward(const tg::Tensor& x) override { return x; }
    std::string type_name() const override { return "One"; }
  } one;
  const std::string two = dir / "two.safetensors";
  write_bytes(two, st_file(R"({"counts":{"dtype":"I32","shape":[2],"data_offsets":[0,8]}})", std::string(8, '\1')));
  CHECK_THROWS_WITH_AS(nn::load(one, two), doctest::Contains("dtype of counts: I32 in the file, F32 in the module"),
                       io::MismatchError);
  one.to(tg::kFloat64);
  CHECK_THROWS_WITH_AS(nn::load(one, two), doctest::Contains("dtype of counts: I32 in the file, F64 in the module"),
                       io::MismatchError);
}

TEST_CASE("save_tensors rejects undefined tensors, duplicate and reserved names, invalid UTF-8") {
  TempDir dir;
  const std::string path = dir / "bad.safetensors";
  const tg::Tensor t = tg::ones({1});
  CHECK_THROWS_WITH_AS(io::save_tensors(path, {{"a", t}, {"a", tg::ones({1}, tg::kFloat64)}}),
                       doctest::Contains(("save_tensors: " + path + ": duplicate tensor name \"a\"").c_str()),
                       tg::ValueError);
  CHECK_THROWS_WITH_AS(io::save_tensors(path, {{"__metadata__", t}}), doctest::Contains("\"__metadata__\" is reserved"),
                       tg::ValueError);
  CHECK_THROWS_WITH_AS(io::save_tensors(path, {{"u", tg::Tensor()}}), doctest::Contains("tensor \"u\" is undefined"),
                       tg::ValueError);
  CHECK_THROWS_WITH_AS(io::save_tensors(path, {{"bad\xff", t}}), doctest::Contains("is not valid UTF-8"), tg::ValueError);
  CHECK_THROWS_WITH_AS(io::save_tensors(path, {{"a", t}}, {{"k", "\xc3"}}),
                       doctest::Contains("metadata value of \"k\" is not valid UTF-8"), tg::ValueError);
  CHECK_FALSE(fs::exists(path));  // nothing written
}

TEST_CASE("I/O errors name the path") {
  TempDir dir;
  const std::string missing = dir / "missing.safetensors";
  CHECK_THROWS_WITH_AS(io::load_tensors(missing), doctest::Contains((missing + ": cannot open for reading").c_str()),
                       io::FileError);
  CHECK_THROWS_WITH_AS(io::load_tensors(dir.path.string()),
                       doctest::Contains((dir.path.string() + ": cannot open for reading: it is a directory").c_str()),
                       io::FileError);

  const std::string unwritable = dir / "no-such-directory/model.safetensors";
  CHECK_THROWS_WITH_AS(io::save_tensors(unwritable, {{"a", tg::ones({1})}}),
                       doctest::Contains((unwritable + ": cannot open for writing").c_str()), io::FileError);
  tg::Generator gen(1);
  Tiny net(gen);
  CHECK_THROWS_WITH_AS(nn::save(net, unwritable), doctest::Contains((unwritable + ": cannot open for writing").c_str()),
                       io::FileError);
  CHECK_THROWS_WITH_AS(nn::load(net, missing), doctest::Contains(missing.c_str()), io::FileError);
  CHECK_THROWS_WITH_AS(io::save_tensors(dir.path.string(), {{"a", tg::ones({1})}}),
                       doctest::Contains((dir.path.string() + ": cannot open for writing").c_str()), io::FileError);
}

// ============================================================================
// modules
// ============================================================================

TEST_CASE_TEMPLATE("a module round-trips: every parameter and buffer, into the existing tensors", T, float,
                   double) {
  const tg::Dtype dtype = tg::dtype_of<T>();
  TempDir dir;
  tg::Generator gen1(1), gen2(2);
  Tiny source(gen1), target(gen2);
  source.to(dtype);  // a float64 model is a float32 one converted
  target.to(dtype);
  const std::string path = dir / "tiny.safetensors";
  nn::save(source, path, {{"format", "tapegrad"}});

  const io::TensorFile file = io::load_tensors(path);
  std::vector<std::string> names;
  for (const auto& t : file.tensors) {
    names.push_back(t.name);
    CHECK(t.dtype == (dtype == tg::kFloat32 ? "F32" : "F64"));
  }
  CHECK(names == std::vector<std::string>{"weight", "bias", "inner.scale", "running", "inner.count"});
  CHECK(file.metadata == nn::Metadata{{"format", "tapegrad"}});
  CHECK(file.at("inner.count").shape == Shape{});

  // An optimizer's handles, taken before loading.
  const auto held = target.parameters();
  std::vector<const T*> storage;
  for (const auto& p : held) storage.push_back(p.data<T>());

  nn::load(target, path);
  const auto expected = state_of(source);
  const auto got = state_of(target);
  REQUIRE(got.size() == expected.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    INFO(got[i].first);
    CHECK(got[i].first == expected[i].first);
    CHECK(same_bits(got[i].second, expected[i].second));  // the dtype too
    CHECK_FALSE(got[i].second.same(expected[i].second));
  }
  for (std::size_t i = 0; i < held.size(); ++i) {
    CHECK(held[i].data<T>() == storage[i]);
    CHECK(same_bits(held[i], source.parameters()[i]));
  }
  CHECK(target.find("weight").requires_grad());
  CHECK_FALSE(target.find("bias").requires_grad());  // requires_grad is not in the file
}

TEST_CASE("save and load take a holder as they take a module") {
  TempDir dir;
  const std::string path = dir / "seq.safetensors";
  tg::manual_seed(1);
  nn::Sequential source(nn::Linear(3, 4), nn::ReLU(), nn::Linear(4, 2));
  tg::manual_seed(2);
  nn::Sequential target(nn::Linear(3, 4), nn::ReLU(), nn::Linear(4, 2));
  nn::save(source, path);
  const nn::LoadResult result = nn::load(target, path);
  CHECK(result.missing_keys.empty());
  CHECK(result.unexpected_keys.empty());
  const auto want = source->named_parameters();
  const auto got = target->named_parameters();
  REQUIRE(want.size() == 4);
  for (std::size_t i = 0; i < want.size(); ++i) {
    CAPTURE(want[i].first);
    CHECK(got[i].first == want[i].first);
    CHECK(same_bits(got[i].second, want[i].second));
  }
  // Non-strict through a holder: the keys a smaller model lacks.
  nn::Sequential smaller(nn::Linear(3, 4));
  const nn::LoadResult partial = nn::load(smaller, path, /*strict=*/false);
  CHECK(partial.unexpected_keys == std::vector<std::string>{"2.weight", "2.bias"});
}

TEST_CASE("load reports every mismatch in one exception and changes nothing") {
  TempDir dir;
  tg::Generator gen(5);
  Tiny net(gen);
  const std::vector<tg::Tensor> values = values_of(net);

  // Written by hand: save_tensors cannot write U8, a dtype tapegrad does not read.
  const std::string path = dir / "other.safetensors";
  write_bytes(path, st_file("{" + entry("weight", "F32", "[3,2]", 0, 24) + "," + entry("bias", "I32", "[3]", 24, 36) +
                                "," + entry("inner.scale", "U8", "[2]", 36, 38) + "," +
                                entry("inner.count", "F32", "[]", 38, 42) + "," + entry("stray", "F32", "[1]", 42, 46) +
                                "," + entry("head.weight", "F32", "[1]", 46, 50) + "}",
                            std::string(50, '\0')));
  const std::string head = path + ": does not match the module (Tiny), 7 differences:";
  CHECK_THROWS_WITH_AS(nn::load(net, path), doctest::Contains(head.c_str()), io::MismatchError);
  for (const char* line : {"\n  shape of weight: (3, 2) in the file, (2, 3) in the module\n",
                           "\n  dtype of bias: I32 in the file, F32 in the module\n",
                           "\n  shape of inner.scale: (2,) in the file, (1,) in the module\n",
                           "\n  dtype of inner.scale: U8 in the file, F32 in the module\n",
                           "\n  missing in file: running\n", "\n  unexpected in file: stray\n",
                           "\n  unexpected in file: head.weight"}) {
    INFO(line);
    CHECK_THROWS_WITH_AS(nn::load(net, path), doctest::Contains(line), io::MismatchError);
  }
  const auto after = state_of(net);
  for (std::size_t i = 0; i < after.size(); ++i) CHECK(same_bits(after[i].second, values[i]));

  // Dtypes tapegrad reads are no difference (they convert, see below); only
  // shapes and names are.
  io::save_tensors(path, {{"weight", tg::zeros({3, 2}, tg::kFloat64)},
                          {"bias", tg::zeros({3}, tg::kFloat64)},
                          {"inner.scale", tg::zeros({2}, tg::kInt64)},
                          {"inner.count", tg::zeros({})},
                          {"running", tg::zeros({3}, tg::kBool)},
                          {"stray", tg::zeros({1})}});
  CHECK_THROWS_WITH_AS(nn::load(net, path),
                       doctest::Contains((path + ": does not match the module (Tiny), 3 differences:\n  shape of "
                                                 "weight: (3, 2) in the file, (2, 3) in the module\n  shape of "
                                                 "inner.scale: (2,) in the file, (1,) in the module\n  unexpected in "
                                                 "file: stray").c_str()),
                       io::MismatchError);
  for (std::size_t i = 0; i < after.size(); ++i) CHECK(same_bits(after[i].second, values[i]));

  const std::string floats = dir / "floats.safetensors";
  nn::save(net, floats);
  // One difference.
  Tiny wide(gen, {2, 4});
  CHECK_THROWS_WITH_AS(nn::load(wide, floats),
                       doctest::Contains("1 difference:\n  shape of weight: (2, 3) in the file, (2, 4) in the module"),
                       io::MismatchError);

  // A corrupt file is a FormatError, whatever the module.
  write_bytes(floats, "short");
  CHECK_THROWS_AS(nn::load(net, floats), io::FormatError);
}

TEST_CASE("a non-strict load returns the missing and unexpected keys and loads the rest") {
  TempDir dir;
  tg::Generator gen(15);
  Tiny source(gen), target(gen);
  // The file: source's weight and inner.scale, plus a name target lacks.
  const std::string path = dir / "partial.safetensors";
  io::save_tensors(path, {{"weight", source.find("weight")}, {"inner.scale", source.find("inner.scale")},
                          {"classifier.weight", tg::ones({2})}});
  const tg::Tensor bias_before = target.find("bias").clone();
  CHECK_THROWS_AS(nn::load(target, path), io::MismatchError);  // strict by default
  const nn::LoadResult result = nn::load(target, path, /*strict=*/false);
  CHECK(result.missing_keys == std::vector<std::string>{"bias", "running", "inner.count"});
  CHECK(result.unexpected_keys == std::vector<std::string>{"classifier.weight"});
  CHECK(tg::eq(target.find("weight"), source.find("weight")).sum().item() == 6);
  CHECK(tg::eq(target.find("inner.scale"), source.find("inner.scale")).sum().item() == 1);
  CHECK(tg::eq(target.find("bias"), bias_before).sum().item() == 3);  // untouched
  // A shape mismatch of a name both hold is still an error.
  io::save_tensors(path, {{"weight", tg::ones({3, 2})}});
  CHECK_THROWS_WITH_AS(nn::load(target, path, false), doctest::Contains("shape of weight: (3, 2) in the file"),
                       io::MismatchError);
}

TEST_CASE("load converts values to the module's dtypes, as torch's load_state_dict does") {
  TempDir dir;
  tg::Generator gen(6);

  // A float32 model's file into a float64 model: widened exactly, into the
  // existing float64 storage; the model stays float64.
  Tiny net(gen);
  const std::string floats = dir / "floats.safetensors";
  nn::save(net, floats);
  Tiny dnet(gen);
  dnet.to(tg::kFloat64);
  const double* weight_storage = dnet.find("weight").data<double>();
  nn::load(dnet, floats);
  CHECK(dnet.find("weight").data<double>() == weight_storage);
  for (const auto& named : state_of(dnet)) {  // not [name, tensor]: INFO captures name in a lambda
    const std::string& name = named.first;
    const tg::Tensor& tensor = named.second;
    INFO(name);
    CHECK(tensor.dtype() == tg::kFloat64);
    CHECK(same_bits(tensor, net.find(name).to(tg::kFloat64)));
  }

  // And back: a float64 file into a float32 model, rounded to nearest.
  Tiny wide_values(gen);
  wide_values.to(tg::kFloat64);
  {
    tg::NoGradGuard no_grad;
    wide_values.find("weight").copy_(tg::tensor({{0.1, 1.0 / 3.0, 1e-50}, {1e300, -2.0, kPi}}, tg::kFloat64));
  }
  const std::string doubles = dir / "doubles.safetensors";
  nn::save(wide_values, doubles);
  CHECK(io::load_tensors(doubles).at("weight").dtype == "F64");
  nn::load(net, doubles);
  for (const auto& named : state_of(net)) {  // not [name, tensor]: INFO captures name in a lambda
    const std::string& name = named.first;
    const tg::Tensor& tensor = named.second;
    INFO(name);
    CHECK(tensor.dtype() == tg::kFloat32);
    CHECK(same_bits(tensor, wide_values.find(name).to(tg::kFloat32)));
  }
  CHECK(same_bits(net.find("weight"),
                  xt::xarray<float>{{0.1f, 1.0f / 3.0f, 0.0f}, {std::numeric_limits<float>::infinity(), -2.0f,
                                                                 static_cast<float>(kPi)}}));

  // I64 and BOOL into floating tensors: their values.
  const std::string ints = dir / "ints.safetensors";
  io::save_tensors(ints, {{"weight", tg::tensor({{-3, 0, 7}, {1, 2, 16777216}}, tg::kInt64)},
                          {"bias", tg::tensor({1, 0, 1}, tg::kBool)},
                          {"inner.scale", tg::tensor({5}, tg::kInt64)},
                          {"running", tg::tensor({0, 0, 1}, tg::kBool)},
                          {"inner.count", tg::scalar_tensor(9, tg::kInt64)}});
  nn::load(dnet, ints);
  CHECK(same_bits(dnet.find("weight"), xt::xarray<double>{{-3, 0, 7}, {1, 2, 16777216}}));
  CHECK(same_bits(dnet.find("bias"), xt::xarray<double>{1, 0, 1}));
  CHECK(same_bits(dnet.find("running"), xt::xarray<double>{0, 0, 1}));
  CHECK(same_bits(dnet.find("inner.count"), xt::xarray<double>(9.0)));
  CHECK(dnet.find("weight").requires_grad());  // still a parameter
}

namespace {

// A BatchNorm2d that has seen `batches` training batches.
nn::BatchNorm2d trained_batch_norm(tg::Generator& gen, int batches, tg::Dtype dtype = tg::kFloat32) {
  nn::BatchNorm2d bn(3);
  bn->to(dtype);
  for (int i = 0; i < batches; ++i) bn(tg::randn({4, 3, 2, 2}, gen, 0.0, 1.0, dtype));
  {
    tg::NoGradGuard no_grad;  // parameters off their defaults too
    bn->weight.copy_(tg::randn({3}, gen));
    bn->bias.copy_(tg::randn({3}, gen));
  }
  return bn;
}

}  // namespace

TEST_CASE("BatchNorm2d's int64 num_batches_tracked is saved as I64 and loaded, also from F32") {
  TempDir dir;
  tg::Generator gen(8);
  const auto source = trained_batch_norm(gen, 3);
  REQUIRE(source->num_batches_tracked.dtype() == tg::kInt64);
  REQUIRE(source->num_batches_tracked.item<std::int64_t>() == 3);

  const std::string path = dir / "bn.safetensors";
  nn::save(*source, path);
  const io::TensorFile file = io::load_tensors(path);
  CHECK(file.at("num_batches_tracked").dtype == "I64");
  CHECK(file.at("num_batches_tracked").shape == Shape{});
  CHECK(file.at("running_mean").dtype == "F32");
  CHECK(same_bits(file.get("num_batches_tracked"), xt::xarray<std::int64_t>(std::int64_t{3})));

  nn::BatchNorm2d target(3);
  nn::load(*target, path);
  for (const auto& named : state_of(*target)) {  // not [name, tensor]: INFO captures name in a lambda
    const std::string& name = named.first;
    const tg::Tensor& tensor = named.second;
    INFO(name);
    CHECK(same_bits(tensor, source->find(name)));  // num_batches_tracked stays int64
  }

  // A count beyond double's exact integers survives: I64 is read as int64.
  const std::int64_t big = (std::int64_t{1} << 53) + 1;
  source->num_batches_tracked.copy_(tg::Tensor(xt::xarray<std::int64_t>(big)));
  nn::save(*source, path);
  nn::load(*target, path);
  CHECK(target->num_batches_tracked.item<std::int64_t>() == big);

  // A file from before num_batches_tracked was int64: every tensor F32.
  std::vector<std::pair<std::string, tg::Tensor>> old_style;
  for (const auto& [name, tensor] : state_of(*source))
    old_style.emplace_back(name, name == "num_batches_tracked" ? tg::scalar_tensor(7.0) : tensor);
  io::save_tensors(path, old_style);
  CHECK(io::load_tensors(path).at("num_batches_tracked").dtype == "F32");
  nn::load(*target, path);
  CHECK(target->num_batches_tracked.dtype() == tg::kInt64);
  CHECK(target->num_batches_tracked.item<std::int64_t>() == 7);

  // A float count that is no whole number (or no int64) is refused, and nothing changes.
  const std::vector<tg::Tensor> before = values_of(*target);
  for (const double bad : {2.5, 1e30, -1e19, std::numeric_limits<double>::quiet_NaN()}) {
    INFO(bad);
    old_style.back().second = tg::scalar_tensor(bad, tg::kFloat64);
    REQUIRE(old_style.back().first == "num_batches_tracked");
    old_style[0].second = tg::zeros({3});  // weight: would change if anything were copied
    io::save_tensors(path, old_style);
    CHECK_THROWS_WITH_AS(nn::load(*target, path),
                         doctest::Contains((path + ": tensor \"num_batches_tracked\": element 0 of the file's F64 "
                                                   "value is ").c_str()),
                         io::MismatchError);
    CHECK_THROWS_WITH_AS(nn::load(*target, path),
                         doctest::Contains("which the module's int64 tensor cannot hold exactly"), io::MismatchError);
    const auto after = state_of(*target);
    for (std::size_t i = 0; i < after.size(); ++i) CHECK(same_bits(after[i].second, before[i]));
  }
  // The largest exact value still loads; BOOL converts to 0 or 1.
  old_style.back().second = tg::scalar_tensor(-9223372036854775808.0, tg::kFloat64);
  io::save_tensors(path, old_style);
  nn::load(*target, path);
  CHECK(target->num_batches_tracked.item<std::int64_t>() == std::numeric_limits<std::int64_t>::min());
  old_style.back().second = tg::scalar_tensor(1, tg::kBool);
  io::save_tensors(path, old_style);
  nn::load(*target, path);
  CHECK(target->num_batches_tracked.item<std::int64_t>() == 1);
}

TEST_CASE("a float64 BatchNorm2d saves F64 (and I64) and loads F64 exactly") {
  TempDir dir;
  tg::Generator gen(11);
  const auto source = trained_batch_norm(gen, 2, tg::kFloat64);
  CHECK(source->running_mean.dtype() == tg::kFloat64);
  CHECK(source->num_batches_tracked.dtype() == tg::kInt64);  // integer buffers keep their dtype
  const std::string path = dir / "bn64.safetensors";
  nn::save(*source, path);
  const io::TensorFile file = io::load_tensors(path);
  for (const auto& t : file.tensors) {
    INFO(t.name);
    CHECK(t.dtype == (t.name == "num_batches_tracked" ? "I64" : "F64"));
  }
  nn::BatchNorm2d target(3);
  target->to(tg::kFloat64);
  nn::load(*target, path);
  for (const auto& named : state_of(*target)) {  // not [name, tensor]: INFO captures name in a lambda
    const std::string& name = named.first;
    const tg::Tensor& tensor = named.second;
    INFO(name);
    CHECK(same_bits(tensor, source->find(name)));
  }
  CHECK(target->num_batches_tracked.item<std::int64_t>() == 2);
}

TEST_CASE("a bool tensor in a module takes only 0 and 1") {
  TempDir dir;
  struct Masked : nn::Module {
    Masked() { register_buffer("mask", tg::zeros({3}, tg::kBool)); }
    tg::Tensor forward(const tg::Tensor& x) override { return x; }
    std::string type_name() const override { return "Masked"; }
  } masked;
  const std::string path = dir / "mask.safetensors";
  io::save_tensors(path, {{"mask", tg::tensor({1, 0, 1}, tg::kInt64)}});
  nn::load(masked, path);
  CHECK(same_bits(masked.find("mask"), xt::xarray<bool>{true, false, true}));
  io::save_tensors(path, {{"mask", tg::tensor({0, 2, 1}, tg::kInt64)}});
  CHECK_THROWS_WITH_AS(nn::load(masked, path),
                       doctest::Contains("tensor \"mask\": element 1 of the file's I64 value is 2, which the module's "
                                         "bool tensor cannot hold exactly"),
                       io::MismatchError);
  CHECK(same_bits(masked.find("mask"), xt::xarray<bool>{true, false, true}));
  nn::save(masked, path);
  CHECK(io::load_tensors(path).at("mask").dtype == "BOOL");
}

// ============================================================================
// the format, against an independent implementation
// ============================================================================

TEST_CASE("python's json + struct reader reads what save_tensors writes") {
  TempDir dir;
  tg::Generator gen(9);
  const std::string path = dir / "for-python.safetensors";
  const tg::Tensor w = tg::randn({2, 3}, gen);
  const tg::Tensor special(xt::xarray<float>{-0.0f, std::numeric_limits<float>::infinity(),
                                             std::numeric_limits<float>::quiet_NaN(),
                                             std::numeric_limits<float>::denorm_min(), 0.1f});
  const tg::Tensor d = tg::randn({4}, gen, 0.0, 1.0, tg::kFloat64);
  const tg::Tensor scalar(xt::xarray<double>(-1.0 / 3.0));
  const tg::Tensor empty = tg::zeros({3, 0});
  const tg::Tensor steps(xt::xarray<std::int64_t>{std::numeric_limits<std::int64_t>::min(), -1, 0,
                                                  (std::int64_t{1} << 53) + 1, std::numeric_limits<std::int64_t>::max()});
  const tg::Tensor mask(xt::xarray<bool>{{true, false, false}, {true, true, false}});
  io::save_tensors(path,
                   {{"w", w}, {"special", special}, {"d", d}, {"scalar", scalar}, {"empty", empty}, {"steps", steps},
                    {"mask", mask}},
                   {{"epoch", "12"}, {"note", "größe mit leerzeichen"}});

  const ScriptRun run = run_script(dir, "read", path);
  INFO("script output:\n", run.output);
  REQUIRE(run.status == 0);
  const std::vector<std::string> lines = split(run.output, '\n');
  REQUIRE(lines.size() == 10);

  const std::string bytes = read_bytes(path);
  std::uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(bytes[i]);
  CHECK(lines[0] == "header " + std::to_string(n));
  CHECK(n % 8 == 0);
  CHECK(lines[1] == "metadata epoch 12");
  CHECK(lines[2] == "metadata note größe mit leerzeichen");

  struct Expected {
    std::string name, dtype, shape, bytes;
    std::vector<double> values;
    std::string printed;  // for integers and bools: the values exactly as printed
  };
  auto as_doubles = [](const auto& xs) { return std::vector<double>(xs.begin(), xs.end()); };
  const auto wv = w.to_xarray<float>(), sv = special.to_xarray<float>();
  const auto dv = d.to_xarray<double>(), scv = scalar.to_xarray<double>();
  const std::vector<Expected> expected{
      {"w", "F32", "2x3", le_bytes(wv), as_doubles(wv), ""},
      {"special", "F32", "5", le_bytes(sv), as_doubles(sv), ""},
      {"d", "F64", "4", le_bytes(dv), as_doubles(dv), ""},
      {"scalar", "F64", "-", le_bytes(scalar.to_xarray<double>()), as_doubles(scv), ""},
      {"empty", "F32", "3x0", "", {}, ""},
      {"steps", "I64", "5", le_bytes(steps.to_xarray<std::int64_t>()), {},
       "-9223372036854775808,-1,0,9007199254740993,9223372036854775807"},
      {"mask", "BOOL", "2x3", std::string("\1\0\0\1\1\0", 6), {}, "1,0,0,1,1,0"},
  };
  for (std::size_t i = 0; i < expected.size(); ++i) {
    const Expected& e = expected[i];
    INFO("tensor ", e.name, ": ", lines[3 + i]);
    const std::vector<std::string> fields = split(lines[3 + i], ' ');
    REQUIRE(fields.size() == 6);
    CHECK(fields[0] == "tensor");
    CHECK(fields[1] == e.name);
    CHECK(fields[2] == e.dtype);
    CHECK(fields[3] == e.shape);
    CHECK(std::stoul(fields[4], nullptr, 16) == crc32(e.bytes));
    if (!e.printed.empty()) {
      CHECK(fields[5] == e.printed);
      continue;
    }
    if (e.values.empty()) {
      CHECK(fields[5] == "-");
      continue;
    }
    const std::vector<std::string> printed = split(fields[5], ',');
    REQUIRE(printed.size() == e.values.size());
    for (std::size_t k = 0; k < printed.size(); ++k) {
      const double v = std::strtod(printed[k].c_str(), nullptr);
      if (std::isnan(e.values[k])) {
        CHECK(std::isnan(v));
      } else {
        CHECK(same_bits(xt::xarray<double>(v), xt::xarray<double>(e.values[k])));  // exact, -0.0 too
      }
    }
  }

  // The same reader rejects a file with a gap, so it does check.
  write_bytes(path, st_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", std::string(8, '\0')));
  CHECK(run_script(dir, "read", path).status != 0);
}

TEST_CASE("load_tensors reads exactly what python's json + struct writer writes") {
  TempDir dir;
  const std::string path = dir / "from-python.safetensors";
  const ScriptRun run = run_script(dir, "write", path);
  INFO("script output:\n", run.output);
  REQUIRE(run.status == 0);

  const io::TensorFile file = io::load_tensors(path);
  CHECK(file.metadata == nn::Metadata{{"format", "pt"}, {"source", "safetensors_check.py"}});
  std::vector<std::string> names;
  for (const auto& t : file.tensors) names.push_back(t.name);
  CHECK(names == std::vector<std::string>{"weight", "scalar", "empty", "counts", "column", "steps", "mask"});  // data order

  const xt::xarray<float> weight{{0.1f, -2.5f, std::numeric_limits<float>::max()},
                                 {std::numeric_limits<float>::denorm_min(), -0.0f,
                                  std::numeric_limits<float>::infinity()}};
  CHECK(same_bits(file.get("weight"), weight));
  CHECK(same_bits(file.get("scalar"), xt::xarray<double>(kPi)));
  CHECK(file.get("scalar").dim() == 0);
  CHECK(file.get("empty", tg::kFloat64).shape() == Shape{0, 3});
  CHECK(file.at("counts").dtype == "I32");
  CHECK_FALSE(file.at("counts").loaded());
  xt::xarray<double> column{1e-300, -std::numeric_limits<double>::max(), 2.0 / 3.0};
  column.reshape({3, 1});
  CHECK(same_bits(file.get("column"), column));
  CHECK(same_bits(file.get("steps"), xt::xarray<std::int64_t>{5, -1, (std::int64_t{1} << 62) + 1}));
  xt::xarray<bool> mask{true, false, false, true};
  mask.reshape({2, 2});
  CHECK(same_bits(file.get("mask"), mask));

  // And what tapegrad writes from it, python reads back the same.
  io::save_tensors(dir / "back.safetensors", {{"weight", file.get("weight")},
                                              {"column", file.get("column")},
                                              {"steps", file.get("steps")},
                                              {"mask", file.get("mask")}});
  const ScriptRun back = run_script(dir, "read", dir / "back.safetensors");
  INFO("script output:\n", back.output);
  REQUIRE(back.status == 0);
  CHECK(back.output.find("tensor column F64 3x1 ") != std::string::npos);
  CHECK(back.output.find(",-1.7976931348623157e+308,0.6666666666666666\n") != std::string::npos);
  CHECK(back.output.find(" 5,-1,4611686018427387905\n") != std::string::npos);
  CHECK(back.output.find("tensor mask BOOL 2x2 ") != std::string::npos);
  CHECK(back.output.find(" 1,0,0,1\n") != std::string::npos);
  CHECK(read_bytes(dir / "back.safetensors").find("\"steps\":{\"dtype\":\"I64\",\"shape\":[3]") != std::string::npos);
}

// ============================================================================
// corrupt files
// ============================================================================

namespace {

// load_tensors on `bytes` throws FormatError "<path>: ...`part`...".
void check_corrupt(const TempDir& dir, const std::string& bytes, const std::string& part) {
  const std::string path = dir / "corrupt.safetensors";
  write_bytes(path, bytes);
  INFO("expected: ", part);
  CHECK_THROWS_WITH_AS(io::load_tensors(path), doctest::Contains((path + ": " + part).c_str()), io::FormatError);
}

}  // namespace

TEST_CASE("corrupt files: the length and the header") {
  TempDir dir;
  check_corrupt(dir, "", "the file is 0 bytes long, shorter than the 8-byte header length");
  check_corrupt(dir, std::string("\x02\0\0\0\0", 5), "the file is 5 bytes long, shorter than the 8-byte header length");
  check_corrupt(dir, le64(1000) + "{}", "header length 1000 is larger than the 2 bytes that follow it");
  check_corrupt(dir, le64(~std::uint64_t{0}) + "{}",
                "header length 18446744073709551615 is larger than the 2 bytes that follow it");
  check_corrupt(dir, le64(0), "the header is not valid JSON");
  check_corrupt(dir, st_file(R"({"a": )"), "the header is not valid JSON: parse error at line 1, column 7");
  check_corrupt(dir, st_file("{\"\xff\":1}"), "the header is not valid JSON");
  check_corrupt(dir, st_file("{}  x"), "the header is not valid JSON");
  check_corrupt(dir, st_file("[1, 2]"), "the header is an array, not a JSON object");
  check_corrupt(dir, st_file("\"text\""), "the header is a string, not a JSON object");
  check_corrupt(dir, st_file(R"({"a":5})"), "tensor \"a\": the entry is a number, not an object");
  check_corrupt(dir, st_file(R"({"__metadata__":[1]})"), "\"__metadata__\" must be an object of strings, not an array");
  check_corrupt(dir, st_file(R"({"__metadata__":{"k":1}})"),
                "\"__metadata__\" must map strings to strings, but \"k\" is a number");
  check_corrupt(dir, st_file("{" + entry("a", "F32", "[1]", 0, 4) + "," + entry("a", "F32", "[1]", 4, 8) + "}",
                             std::string(8, '\0')),
                "the header names \"a\" twice");

  // A header length beyond the reference implementation's limit (a sparse file).
  const std::string big = dir / "big.safetensors";
  write_bytes(big, le64(200'000'000) + "{}");
  fs::resize_file(big, 200'000'100);
  CHECK_THROWS_WITH_AS(io::load_tensors(big), doctest::Contains("header length 200000000 exceeds the limit"),
                       io::FormatError);
}

TEST_CASE("corrupt files: entries with missing or ill-typed fields, unknown dtypes") {
  TempDir dir;
  const std::string four(4, '\0');
  check_corrupt(dir, st_file(R"({"a":{"shape":[1],"data_offsets":[0,4]}})", four), "tensor \"a\": no \"dtype\" field");
  check_corrupt(dir, st_file(R"({"a":{"dtype":"F32","data_offsets":[0,4]}})", four), "tensor \"a\": no \"shape\" field");
  check_corrupt(dir, st_file(R"({"a":{"dtype":"F32","shape":[1]}})", four), "tensor \"a\": no \"data_offsets\" field");
  check_corrupt(dir, st_file(R"({"a":{"dtype":32,"shape":[1],"data_offsets":[0,4]}})", four),
                "tensor \"a\": \"dtype\" must be a string, not 32");
  check_corrupt(dir, st_file(R"({"a":{"dtype":"F33","shape":[1],"data_offsets":[0,4]}})", four),
                "tensor \"a\": unknown dtype \"F33\"");
  check_corrupt(dir, st_file(R"({"a":{"dtype":"f32","shape":[1],"data_offsets":[0,4]}})", four),
                "tensor \"a\": unknown dtype \"f32\"");
  for (const char* shape : {"\"1\"", "[-1]", "[1.0]", "[\"1\"]", "{}", "null"}) {
    INFO(shape);
    check_corrupt(dir, st_file(R"({"a":{"dtype":"F32","shape":)" + std::string(shape) + R"(,"data_offsets":[0,4]}})", four),
                  "tensor \"a\": \"shape\" must be an array of non-negative integers, not " + std::string(shape));
  }
  for (const char* offsets : {"[0]", "[0,4,8]", "[0,\"4\"]", "[-4,0]", "[0,4.0]", "4", "[]"}) {
    INFO(offsets);
    check_corrupt(dir, st_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":)" + std::string(offsets) + "}}", four),
                  "tensor \"a\": \"data_offsets\" must be [begin, end], two non-negative integers, not " +
                      std::string(offsets));
  }
  check_corrupt(dir, st_file("{" + entry("a", "F32", "[4294967296,4294967296]", 0, 0) + "}"),
                "tensor \"a\": shape (4294967296, 4294967296) is too large");
  check_corrupt(dir, st_file("{" + entry("a", "F64", "[4611686018427387904]", 0, 0) + "}"),
                "tensor \"a\": shape (4611686018427387904,) is too large");
  check_corrupt(dir, st_file("{" + entry("a", "F32", "[2]", 0, 18446744073709551615ull) + "}", four),
                "tensor \"a\": data_offsets [0, 18446744073709551615] hold 18446744073709551615 bytes, but F32 (2,) needs 8");
}

TEST_CASE("corrupt files: offsets and the data section") {
  TempDir dir;
  auto zeros = [](std::size_t n) { return std::string(n, '\0'); };
  check_corrupt(dir, st_file("{" + entry("a", "F32", "[2]", 0, 4) + "}", zeros(4)),
                "tensor \"a\": data_offsets [0, 4] hold 4 bytes, but F32 (2,) needs 8");
  check_corrupt(dir, st_file("{" + entry("a", "F64", "[]", 0, 4) + "}", zeros(4)),
                "tensor \"a\": data_offsets [0, 4] hold 4 bytes, but F64 () needs 8");
  check_corrupt(dir, st_file("{" + entry("a", "I64", "[1]", 0, 4) + "}", zeros(4)),
                "tensor \"a\": data_offsets [0, 4] hold 4 bytes, but I64 (1,) needs 8");
  check_corrupt(dir, st_file("{" + entry("a", "BOOL", "[3]", 0, 4) + "}", zeros(4)),
                "tensor \"a\": data_offsets [0, 4] hold 4 bytes, but BOOL (3,) needs 3");
  check_corrupt(dir, st_file("{" + entry("a", "F32", "[2]", 8, 0) + "}", zeros(8)),
                "tensor \"a\": data_offsets [8, 0] out of range: begin is after end");
  check_corrupt(dir, st_file("{" + entry("a", "F32", "[2]", 16, 24) + "}", zeros(8)),
                "tensor \"a\": data_offsets [16, 24] out of range: the data section holds 8 bytes");
  check_corrupt(dir, st_file("{" + entry("a", "F32", "[2]", 0, 8) + "," + entry("b", "F32", "[2]", 4, 12) + "}", zeros(12)),
                "tensors \"a\" [0, 8] and \"b\" [4, 12] overlap");
  check_corrupt(dir, st_file("{" + entry("b", "F32", "[2]", 0, 8) + "," + entry("a", "F32", "[2]", 0, 8) + "}", zeros(8)),
                "tensors \"a\" [0, 8] and \"b\" [0, 8] overlap");
  check_corrupt(dir, st_file("{" + entry("a", "F32", "[1]", 0, 4) + "," + entry("b", "F32", "[1]", 8, 12) + "}", zeros(12)),
                "gap in the data section: bytes [4, 8) belong to no tensor");
  check_corrupt(dir, st_file("{" + entry("a", "F32", "[1]", 4, 8) + "}", zeros(8)),
                "gap in the data section: bytes [0, 4) belong to no tensor");
  check_corrupt(dir, st_file("{" + entry("a", "F32", "[4]", 0, 16) + "}", zeros(10)),
                "truncated data section: the tensors take 16 bytes, but 10 follow the header");
  check_corrupt(dir, st_file("{" + entry("a", "F32", "[2]", 0, 8) + "," + entry("b", "F64", "[2]", 8, 24) + "}", zeros(8)),
                "truncated data section: the tensors take 24 bytes, but 8 follow the header");
  check_corrupt(dir, st_file("{" + entry("a", "F32", "[1]", 0, 4) + "}", zeros(8)),
                "4 trailing bytes after the tensors' data (4 bytes)");
  check_corrupt(dir, st_file("{}", zeros(3)), "3 trailing bytes after the tensors' data (0 bytes)");

  // A file cut short anywhere is rejected, never read past its end.
  const std::string path = dir / "whole.safetensors";
  io::save_tensors(path, {{"a", tg::ones({3})}, {"b", tg::ones({2, 2}, tg::kFloat64)}, {"c", tg::ones({2}, tg::kInt64)},
                          {"d", tg::ones({3}, tg::kBool)}});
  const std::string whole = read_bytes(path);
  for (std::size_t size = 0; size < whole.size(); ++size) {
    write_bytes(path, whole.substr(0, size));
    CHECK_THROWS_AS(io::load_tensors(path), io::FormatError);
  }
  // Empty tensors share offsets without overlapping.
  write_bytes(path, st_file("{" + entry("e", "F32", "[0]", 0, 0) + "," + entry("f", "F64", "[0,2]", 0, 0) + "," +
                            entry("a", "F32", "[1]", 0, 4) + "," + entry("z", "F32", "[0]", 4, 4) + "}",
                            le_bytes(xt::xarray<float>{7.0f})));
  const io::TensorFile ok = io::load_tensors(path);
  REQUIRE(ok.tensors.size() == 4);
  CHECK(ok.tensors[0].name == "e");
  CHECK(ok.tensors[1].name == "f");
  CHECK(ok.get("a").item<float>() == 7.0f);
  CHECK(ok.get("f", tg::kFloat64).shape() == Shape{0, 2});
}

TEST_CASE("deeply nested or huge header values give a short message, never a crash") {
  TempDir dir;
  const std::string path = dir / "corrupt.safetensors";
  // 75,000 nested arrays as a shape: refused before parsing, naming the tensor.
  const std::size_t deep = 75'000;
  const std::string nested = std::string(deep, '[') + std::string(deep, ']');
  write_bytes(path, st_file(R"({"w":{"dtype":"F32","shape":)" + nested + R"(,"data_offsets":[0,0]}})"));
  const std::string part = path + ": tensor \"w\": \"shape\" nests arrays or objects more than 16 deep";
  CHECK_THROWS_WITH_AS(io::load_tensors(path), doctest::Contains(part.c_str()), io::FormatError);
  tg::Generator gen(1);
  Tiny net(gen);
  CHECK_THROWS_WITH_AS(nn::load(net, path), doctest::Contains(part.c_str()), io::FormatError);
  check_corrupt(dir, st_file(R"({"__metadata__":)" + nested + "}"),
                "\"__metadata__\" nests arrays or objects more than 16 deep (it must be an object of strings)");
  check_corrupt(dir, st_file(R"({"w":)" + nested + "}"), "tensor \"w\": the entry nests arrays or objects more than 16 deep");
  check_corrupt(dir, st_file(nested), "the header nests arrays or objects more than 16 deep");

  // Shallow nesting reaches the parser and is named as not flat.
  const std::string four(4, '\0');
  check_corrupt(dir, st_file(R"({"a":{"dtype":"F32","shape":[[1]],"data_offsets":[0,4]}})", four),
                "tensor \"a\": \"shape\" must be an array of non-negative integers, not a nested array");
  check_corrupt(dir, st_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[[0],4]}})", four),
                "tensor \"a\": \"data_offsets\" must be [begin, end], two non-negative integers, not a nested array");

  // Brackets inside strings are not nesting: a name of 100 '[' loads.
  const std::string brackets(100, '[');
  write_bytes(path, st_file("{" + entry(brackets, "F32", "[1]", 0, 4) + "}", le_bytes(xt::xarray<float>{2.5f})));
  CHECK(io::load_tensors(path).get(brackets).item<float>() == 2.5f);

  // Long names and values from the header are shortened in messages.
  auto message_of = [&](const std::string& bytes) {
    write_bytes(path, bytes);
    try {
      io::load_tensors(path);
    } catch (const io::FormatError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  const std::string long_name(1'000'000, 'n');
  std::string m = message_of(st_file("{" + entry(long_name, "F33", "[1]", 0, 4) + "}", four));
  CHECK(m.find(": tensor \"" + std::string(77, 'n') + "... (1000000 bytes)\": unknown dtype \"F33\"") !=
        std::string::npos);
  CHECK(m.size() < path.size() + 200);
  m = message_of(st_file(R"({"a":{"dtype":"F32","shape":")" + long_name + R"(","data_offsets":[0,4]}})", four));
  CHECK(m.find("tensor \"a\": \"shape\" must be an array of non-negative integers, not \"nnn") != std::string::npos);
  CHECK(m.size() < path.size() + 200);
  m = message_of(st_file(R"({"a":")" + long_name));  // a string never closed
  CHECK(m.find("the header is not valid JSON: ") != std::string::npos);
  CHECK(m.size() < path.size() + 300);
}

TEST_CASE("a tensor larger than the machine's memory is a named error, not std::bad_alloc") {
  TempDir dir;
  // A sparse file whose sizes all agree: 2^40 F32 elements, 4 TiB of data.
  const std::uint64_t numel = std::uint64_t{1} << 40;
  const std::string header = "{" + entry("big", "F32", "[" + std::to_string(numel) + "]", 0, 4 * numel) + "}";
  const std::string path = dir / "sparse.safetensors";
  write_bytes(path, st_file(header));
  try {
    fs::resize_file(path, 8 + header.size() + 4 * numel);
  } catch (const fs::filesystem_error& e) {
    MESSAGE("no sparse files here, skipped: ", e.what());
    return;
  }
  CHECK_THROWS_WITH_AS(io::load_tensors(path),
                       doctest::Contains((path + ": tensor \"big\" (F32 (1099511627776,)) takes 4398046511104 bytes, "
                                                 "more than this machine's ")
                                             .c_str()),
                       io::FileError);
}

TEST_CASE("load compares the header with the module before reading any data") {
  TempDir dir;
  tg::Generator gen(3);
  Tiny net(gen);
  const auto before = state_of(net);
  std::vector<xt::xarray<float>> values;
  std::string data;
  for (const auto& named : before) {
    values.push_back(named.second.to_xarray<float>());
    data += le_bytes(xt::xarray<float>(values.back() + 1.0f));
  }
  // The module's tensors, then an unwanted 4 GiB one (a sparse file).
  const std::uint64_t extra = std::uint64_t{1} << 30;
  std::string header = "{" + entry("weight", "F32", "[2,3]", 0, 24) + "," + entry("bias", "F32", "[3]", 24, 36) + "," +
                       entry("inner.scale", "F32", "[1]", 36, 40) + "," + entry("running", "F32", "[3]", 40, 52) +
                       "," + entry("inner.count", "F32", "[]", 52, 56) + "," +
                       entry("extra", "F32", "[" + std::to_string(extra) + "]", 56, 56 + 4 * extra) + "}";
  REQUIRE(data.size() == 56);
  const std::string path = dir / "extra.safetensors";
  write_bytes(path, st_file(header, data));
  try {
    fs::resize_file(path, 8 + header.size() + 56 + 4 * extra);
  } catch (const fs::filesystem_error& e) {
    MESSAGE("no sparse files here, skipped: ", e.what());
    return;
  }
  const std::uint64_t growth = peak_memory_growth([&] {
    CHECK_THROWS_WITH_AS(nn::load(net, path),
                         doctest::Contains((path + ": does not match the module (Tiny), 1 difference:\n  unexpected "
                                                   "in file: extra")
                                               .c_str()),
                         io::MismatchError);
  });
  CHECK(growth < 16u << 20);
  const auto after = state_of(net);
  for (std::size_t i = 0; i < after.size(); ++i) CHECK(same_bits(after[i].second, values[i]));

  // The same file without the extra tensor loads, each value from its own range.
  header = "{" + entry("inner.count", "F32", "[]", 52, 56) + "," + entry("running", "F32", "[3]", 40, 52) + "," +
           entry("weight", "F32", "[2,3]", 0, 24) + "," + entry("inner.scale", "F32", "[1]", 36, 40) + "," +
           entry("bias", "F32", "[3]", 24, 36) + "}";
  write_bytes(path, st_file(header, data));
  nn::load(net, path);
  for (std::size_t i = 0; i < after.size(); ++i)
    CHECK(same_bits(after[i].second, xt::xarray<float>(values[i] + 1.0f)));
}

TEST_CASE("FIFOs and devices are refused, not waited on") {
  TempDir dir;
  const std::string path = dir / "model.safetensors";
  Fifo fifo(path);
  REQUIRE(fifo.created());
  const std::string reading = path + ": cannot open for reading: it is a FIFO, not a regular file";
  CHECK_THROWS_WITH_AS(io::load_tensors(path), doctest::Contains(reading.c_str()), io::FileError);
  tg::Generator gen(1);
  Tiny net(gen);
  CHECK_THROWS_WITH_AS(nn::load(net, path), doctest::Contains(reading.c_str()), io::FileError);
  CHECK_THROWS_WITH_AS(nn::save(net, path),
                       doctest::Contains((path + ": cannot open for writing: it is a FIFO, not a regular file").c_str()),
                       io::FileError);
  if (fs::exists("/dev/null"))
    CHECK_THROWS_WITH_AS(io::load_tensors("/dev/null"),
                         doctest::Contains("/dev/null: cannot open for reading: it is a character device"),
                         io::FileError);
}

TEST_CASE("the error classes") {
  static_assert(std::is_base_of_v<tg::Error, io::SerializeError>);
  static_assert(std::is_base_of_v<io::SerializeError, io::FileError>);
  static_assert(std::is_base_of_v<io::SerializeError, io::FormatError>);
  static_assert(std::is_base_of_v<io::SerializeError, io::MismatchError>);
  CHECK(true);
}
