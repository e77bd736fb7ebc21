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

// The little-endian bytes of the elements, whatever the host's byte order.
template <class T>
std::string le_bytes(const xt::xarray<T>& values) {
  using Bits = std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>;
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

template <class T>
T from_bits(std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t> bits) {
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
// parameters weight, bias, inner.scale; buffers running, inner.count.
template <class T>
struct Leaf : nn::BasicModule<T> {
  explicit Leaf(tg::Generator& gen) {
    this->register_parameter("scale", tg::randn<T>({1}, gen));
    this->register_buffer("count", tg::BasicTensor<T>(xt::xarray<T>(T(gen.uniform() * 10))));
  }
  tg::BasicTensor<T> forward(const tg::BasicTensor<T>& x) override { return x; }
  std::string type_name() const override { return "Leaf"; }
};

template <class T>
struct Tiny : nn::BasicModule<T> {
  std::shared_ptr<Leaf<T>> inner;
  explicit Tiny(tg::Generator& gen, const Shape& weight_shape = {2, 3}) {
    this->register_parameter("weight", tg::randn<T>(weight_shape, gen));
    this->register_parameter("bias", tg::randn<T>({3}, gen), /*requires_grad=*/false);
    this->register_buffer("running", tg::randn<T>({3}, gen));
    inner = this->register_module("inner", std::make_shared<Leaf<T>>(gen));
  }
  tg::BasicTensor<T> forward(const tg::BasicTensor<T>& x) override { return x; }
  std::string type_name() const override { return "Tiny"; }
};

template <class T>
std::vector<std::pair<std::string, tg::BasicTensor<T>>> state_of(const nn::BasicModule<T>& m) {
  auto named = m.named_parameters();
  for (auto& b : m.named_buffers()) named.push_back(b);
  return named;
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
  const tg::Tensor cube = tg::randn<float>({2, 3, 4}, gen);
  const tg::Tensor scalar(xt::xarray<float>(2.5f));
  const tg::Tensor empty = tg::zeros<float>({0, 5});
  const tg::DTensor matrix = tg::randn<double>({3, 2}, gen);
  const tg::DTensor dscalar = tg::DTensor(xt::xarray<double>(kPi));
  const tg::DTensor dempty = tg::zeros<double>({0});
  const tg::DTensor dspecial(xt::xarray<double>{-0.0, dnan_payload, std::numeric_limits<double>::denorm_min(),
                                                 std::numeric_limits<double>::max(), 0.1});

  const std::string path = dir / "mixed.safetensors";
  const nn::Metadata metadata{{"epoch", "3"}, {"note", "größe und ümlaut"}};
  nn::save_tensors(path,
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

  const nn::TensorFile file = nn::load_tensors(path);
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

  CHECK(same_bits(file.get<float>("special").value(), special.value()));
  CHECK(same_bits(file.get<float>("cube").value(), cube.value()));
  CHECK(same_bits(file.get<float>("scalar").value(), scalar.value()));
  CHECK(file.get<float>("scalar").dim() == 0);
  CHECK(same_bits(file.get<float>("empty").value(), empty.value()));
  CHECK(same_bits(file.get<double>("matrix").value(), matrix.value()));
  CHECK(same_bits(file.get<double>("dscalar").value(), dscalar.value()));
  CHECK(same_bits(file.get<double>("dempty").value(), dempty.value()));
  CHECK(same_bits(file.get<double>("dspecial").value(), dspecial.value()));
  CHECK(same_bits(file.get<float>("a.dotted/name with spaces").value(), cube.value()));
  CHECK_FALSE(file.get<float>("cube").requires_grad());
  CHECK_FALSE(file.get<float>("cube").same(cube));  // a new tensor

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
  CHECK(bytes.substr(8 + n, 4 * special.numel()) == le_bytes(special.value()));

  // The single-dtype overload takes what named_parameters() returns, and an
  // existing file is overwritten.
  const std::vector<std::pair<std::string, tg::DTensor>> doubles{{"x", matrix}, {"y", dscalar}};
  nn::save_tensors(path, doubles);
  const nn::TensorFile again = nn::load_tensors(path);
  REQUIRE(again.tensors.size() == 2);
  CHECK(again.metadata.empty());
  CHECK(same_bits(again.get<double>("y").value(), dscalar.value()));
  CHECK(read_bytes(path).find("__metadata__") == std::string::npos);

  // No tensors at all: "{}" padded to 8 bytes.
  nn::save_tensors(path, std::vector<std::pair<std::string, tg::Tensor>>{});
  CHECK(read_bytes(path) == le64(8) + "{}      ");
  CHECK(nn::load_tensors(path).tensors.empty());
}

TEST_CASE("TensorFile::get and at check the name and the dtype") {
  TempDir dir;
  const std::string path = dir / "t.safetensors";
  nn::save_tensors(path, {{"f", tg::ones<float>({2})}, {"d", tg::ones<double>({2})}});
  const nn::TensorFile file = nn::load_tensors(path);
  CHECK(file.contains("f"));
  CHECK_FALSE(file.contains("g"));
  CHECK_THROWS_WITH_AS(file.at("g"), doctest::Contains((path + ": no tensor named \"g\"").c_str()), nn::MismatchError);
  CHECK_THROWS_WITH_AS(file.get<float>("g"), doctest::Contains("no tensor named \"g\""), nn::MismatchError);
  CHECK_THROWS_WITH_AS(file.get<double>("f"), doctest::Contains((path + ": tensor \"f\" is F32, not F64").c_str()),
                       nn::MismatchError);
  CHECK_THROWS_WITH_AS(file.get<float>("d"), doctest::Contains("tensor \"d\" is F64, not F32"), nn::MismatchError);
}

TEST_CASE("a file may hold dtypes tapegrad does not load: listed, not read") {
  TempDir dir;
  const std::string path = dir / "ints.safetensors";
  const std::string header =
      R"({"counts":{"dtype":"I32","shape":[2],"data_offsets":[0,8]},)"
      R"("half":{"dtype":"BF16","shape":[1],"data_offsets":[8,10]},)"
      R"("w":{"dtype":"F32","shape":[1],"data_offsets":[10,14]}})";
  write_bytes(path, st_file(header, std::string("\x07\0\0\0\xff\xff\xff\xff\x80\x3f", 10) + le_bytes(xt::xarray<float>{1.5f})));
  const nn::TensorFile file = nn::load_tensors(path);
  REQUIRE(file.tensors.size() == 3);
  CHECK(file.at("counts").dtype == "I32");
  CHECK(file.at("counts").shape == Shape{2});
  CHECK_FALSE(file.at("counts").loaded());
  CHECK_FALSE(file.at("half").loaded());
  CHECK(file.get<float>("w").item() == 1.5f);
  CHECK_THROWS_WITH_AS(file.get<float>("counts"),
                       doctest::Contains("tensor \"counts\" is I32, not F32 (only F32 and F64 values can be loaded)"),
                       nn::MismatchError);

  // A module wanting one of them: a dtype mismatch.
  struct One : nn::Module {
    One() { register_parameter("counts", tg::zeros<float>({2})); }
    tg::Tensor forward(const tg::Tensor& x) override { return x; }
    std::string type_name() const override { return "One"; }
  } one;
  const std::string two = dir / "two.safetensors";
  write_bytes(two, st_file(R"({"counts":{"dtype":"I32","shape":[2],"data_offsets":[0,8]}})", std::string(8, '\1')));
  CHECK_THROWS_WITH_AS(nn::load(one, two), doctest::Contains("dtype of counts: I32 in the file, F32 in the module"),
                       nn::MismatchError);
}

TEST_CASE("save_tensors rejects undefined tensors, duplicate and reserved names, invalid UTF-8") {
  TempDir dir;
  const std::string path = dir / "bad.safetensors";
  const tg::Tensor t = tg::ones<float>({1});
  CHECK_THROWS_WITH_AS(nn::save_tensors(path, {{"a", t}, {"a", tg::ones<double>({1})}}),
                       doctest::Contains(("save_tensors: " + path + ": duplicate tensor name \"a\"").c_str()),
                       tg::ValueError);
  CHECK_THROWS_WITH_AS(nn::save_tensors(path, {{"__metadata__", t}}), doctest::Contains("\"__metadata__\" is reserved"),
                       tg::ValueError);
  CHECK_THROWS_WITH_AS(nn::save_tensors(path, {{"u", tg::Tensor()}}), doctest::Contains("tensor \"u\" is undefined"),
                       tg::ValueError);
  CHECK_THROWS_WITH_AS(nn::save_tensors(path, {{"bad\xff", t}}), doctest::Contains("is not valid UTF-8"), tg::ValueError);
  CHECK_THROWS_WITH_AS(nn::save_tensors(path, {{"a", t}}, {{"k", "\xc3"}}),
                       doctest::Contains("metadata value of \"k\" is not valid UTF-8"), tg::ValueError);
  CHECK_FALSE(fs::exists(path));  // nothing written
}

TEST_CASE("I/O errors name the path") {
  TempDir dir;
  const std::string missing = dir / "missing.safetensors";
  CHECK_THROWS_WITH_AS(nn::load_tensors(missing), doctest::Contains((missing + ": cannot open for reading").c_str()),
                       nn::FileError);
  CHECK_THROWS_WITH_AS(nn::load_tensors(dir.path.string()),
                       doctest::Contains((dir.path.string() + ": cannot open for reading: it is a directory").c_str()),
                       nn::FileError);

  const std::string unwritable = dir / "no-such-directory/model.safetensors";
  CHECK_THROWS_WITH_AS(nn::save_tensors(unwritable, {{"a", tg::ones<float>({1})}}),
                       doctest::Contains((unwritable + ": cannot open for writing").c_str()), nn::FileError);
  tg::Generator gen(1);
  Tiny<float> net(gen);
  CHECK_THROWS_WITH_AS(nn::save(net, unwritable), doctest::Contains((unwritable + ": cannot open for writing").c_str()),
                       nn::FileError);
  CHECK_THROWS_WITH_AS(nn::load(net, missing), doctest::Contains(missing.c_str()), nn::FileError);
  CHECK_THROWS_WITH_AS(nn::save_tensors(dir.path.string(), {{"a", tg::ones<float>({1})}}),
                       doctest::Contains((dir.path.string() + ": cannot open for writing").c_str()), nn::FileError);
}

// ============================================================================
// modules
// ============================================================================

TEST_CASE_TEMPLATE("a module round-trips: every parameter and buffer, into the existing tensors", T, float,
                   double) {
  TempDir dir;
  tg::Generator gen1(1), gen2(2);
  Tiny<T> source(gen1), target(gen2);
  const std::string path = dir / "tiny.safetensors";
  nn::save(source, path, {{"format", "tapegrad"}});

  const nn::TensorFile file = nn::load_tensors(path);
  std::vector<std::string> names;
  for (const auto& t : file.tensors) {
    names.push_back(t.name);
    CHECK(t.dtype == (std::is_same_v<T, float> ? "F32" : "F64"));
  }
  CHECK(names == std::vector<std::string>{"weight", "bias", "inner.scale", "running", "inner.count"});
  CHECK(file.metadata == nn::Metadata{{"format", "tapegrad"}});
  CHECK(file.at("inner.count").shape == Shape{});

  // An optimizer's handles, taken before loading.
  const auto held = target.parameters();
  std::vector<const T*> storage;
  for (const auto& p : held) storage.push_back(p.data());

  nn::load(target, path);
  const auto expected = state_of(source);
  const auto got = state_of(target);
  REQUIRE(got.size() == expected.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    INFO(got[i].first);
    CHECK(got[i].first == expected[i].first);
    CHECK(same_bits(got[i].second.value(), expected[i].second.value()));
    CHECK_FALSE(got[i].second.same(expected[i].second));
  }
  for (std::size_t i = 0; i < held.size(); ++i) {
    CHECK(held[i].data() == storage[i]);
    CHECK(same_bits(held[i].value(), source.parameters()[i].value()));
  }
  CHECK(target.find("weight").requires_grad());
  CHECK_FALSE(target.find("bias").requires_grad());  // requires_grad is not in the file
}

TEST_CASE("load reports every mismatch in one exception and changes nothing") {
  TempDir dir;
  tg::Generator gen(5);
  Tiny<float> net(gen);
  const auto before = state_of(net);
  std::vector<xt::xarray<float>> values;
  for (const auto& named : before) values.push_back(named.second.value());

  const std::string path = dir / "other.safetensors";
  nn::save_tensors(path, {{"weight", tg::zeros<float>({3, 2})},
                          {"bias", tg::zeros<double>({3})},
                          {"inner.scale", tg::zeros<double>({2})},
                          {"inner.count", tg::zeros<float>({})},
                          {"stray", tg::zeros<float>({1})},
                          {"head.weight", tg::zeros<float>({1})}});
  const std::string head = path + ": does not match the module (Tiny), 7 differences:";
  CHECK_THROWS_WITH_AS(nn::load(net, path), doctest::Contains(head.c_str()), nn::MismatchError);
  for (const char* line : {"\n  shape of weight: (3, 2) in the file, (2, 3) in the module\n",
                           "\n  dtype of bias: F64 in the file, F32 in the module\n",
                           "\n  shape of inner.scale: (2,) in the file, (1,) in the module\n",
                           "\n  dtype of inner.scale: F64 in the file, F32 in the module\n",
                           "\n  missing in file: running\n", "\n  unexpected in file: stray\n",
                           "\n  unexpected in file: head.weight"}) {
    INFO(line);
    CHECK_THROWS_WITH_AS(nn::load(net, path), doctest::Contains(line), nn::MismatchError);
  }
  for (std::size_t i = 0; i < before.size(); ++i) CHECK(same_bits(before[i].second.value(), values[i]));

  // A float model into a double one: every tensor's dtype.
  const std::string floats = dir / "floats.safetensors";
  nn::save(net, floats);
  Tiny<double> dnet(gen);
  CHECK_THROWS_WITH_AS(nn::load(dnet, floats), doctest::Contains("5 differences:\n  dtype of weight: F32 in the file, F64"),
                       nn::MismatchError);
  CHECK_THROWS_WITH_AS(nn::load(dnet, floats), doctest::Contains("dtype of inner.count: F32 in the file, F64"),
                       nn::MismatchError);

  // One difference.
  Tiny<float> wide(gen, {2, 4});
  CHECK_THROWS_WITH_AS(nn::load(wide, floats),
                       doctest::Contains("1 difference:\n  shape of weight: (2, 3) in the file, (2, 4) in the module"),
                       nn::MismatchError);

  // A corrupt file is a FormatError, whatever the module.
  write_bytes(floats, "short");
  CHECK_THROWS_AS(nn::load(net, floats), nn::FormatError);
}

// ============================================================================
// the format, against an independent implementation
// ============================================================================

TEST_CASE("python's json + struct reader reads what save_tensors writes") {
  TempDir dir;
  tg::Generator gen(9);
  const std::string path = dir / "for-python.safetensors";
  const tg::Tensor w = tg::randn<float>({2, 3}, gen);
  const tg::Tensor special(xt::xarray<float>{-0.0f, std::numeric_limits<float>::infinity(),
                                             std::numeric_limits<float>::quiet_NaN(),
                                             std::numeric_limits<float>::denorm_min(), 0.1f});
  const tg::DTensor d = tg::randn<double>({4}, gen);
  const tg::DTensor scalar(xt::xarray<double>(-1.0 / 3.0));
  const tg::Tensor empty = tg::zeros<float>({3, 0});
  nn::save_tensors(path, {{"w", w}, {"special", special}, {"d", d}, {"scalar", scalar}, {"empty", empty}},
                   {{"epoch", "12"}, {"note", "größe mit leerzeichen"}});

  const ScriptRun run = run_script(dir, "read", path);
  INFO("script output:\n", run.output);
  REQUIRE(run.status == 0);
  const std::vector<std::string> lines = split(run.output, '\n');
  REQUIRE(lines.size() == 8);

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
  };
  auto as_doubles = [](const auto& xs) { return std::vector<double>(xs.begin(), xs.end()); };
  const std::vector<Expected> expected{
      {"w", "F32", "2x3", le_bytes(w.value()), as_doubles(w.value())},
      {"special", "F32", "5", le_bytes(special.value()), as_doubles(special.value())},
      {"d", "F64", "4", le_bytes(d.value()), as_doubles(d.value())},
      {"scalar", "F64", "-", le_bytes(scalar.value()), as_doubles(scalar.value())},
      {"empty", "F32", "3x0", "", {}},
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

  const nn::TensorFile file = nn::load_tensors(path);
  CHECK(file.metadata == nn::Metadata{{"format", "pt"}, {"source", "safetensors_check.py"}});
  std::vector<std::string> names;
  for (const auto& t : file.tensors) names.push_back(t.name);
  CHECK(names == std::vector<std::string>{"weight", "scalar", "empty", "counts", "column"});  // data order

  const xt::xarray<float> weight{{0.1f, -2.5f, std::numeric_limits<float>::max()},
                                 {std::numeric_limits<float>::denorm_min(), -0.0f,
                                  std::numeric_limits<float>::infinity()}};
  CHECK(same_bits(file.get<float>("weight").value(), weight));
  CHECK(same_bits(file.get<double>("scalar").value(), xt::xarray<double>(kPi)));
  CHECK(file.get<double>("scalar").dim() == 0);
  CHECK(file.get<double>("empty").shape() == Shape{0, 3});
  CHECK(file.at("counts").dtype == "I32");
  CHECK_FALSE(file.at("counts").loaded());
  xt::xarray<double> column{1e-300, -std::numeric_limits<double>::max(), 2.0 / 3.0};
  column.reshape({3, 1});
  CHECK(same_bits(file.get<double>("column").value(), column));

  // And what tapegrad writes from it, python reads back the same.
  nn::save_tensors(dir / "back.safetensors",
                   {{"weight", file.get<float>("weight")}, {"column", file.get<double>("column")}});
  const ScriptRun back = run_script(dir, "read", dir / "back.safetensors");
  REQUIRE(back.status == 0);
  CHECK(back.output.find("tensor column F64 3x1 ") != std::string::npos);
  CHECK(back.output.find(",-1.7976931348623157e+308,0.6666666666666666\n") != std::string::npos);
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
  CHECK_THROWS_WITH_AS(nn::load_tensors(path), doctest::Contains((path + ": " + part).c_str()), nn::FormatError);
}

// One well-formed entry.
std::string entry(const std::string& name, const std::string& dtype, const std::string& shape, std::uint64_t begin,
                  std::uint64_t end) {
  return "\"" + name + "\":{\"dtype\":\"" + dtype + "\",\"shape\":" + shape + ",\"data_offsets\":[" +
         std::to_string(begin) + "," + std::to_string(end) + "]}";
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
  CHECK_THROWS_WITH_AS(nn::load_tensors(big), doctest::Contains("header length 200000000 exceeds the limit"),
                       nn::FormatError);
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
  nn::save_tensors(path, {{"a", tg::ones<float>({3})}, {"b", tg::ones<double>({2, 2})}});
  const std::string whole = read_bytes(path);
  for (std::size_t size = 0; size < whole.size(); ++size) {
    write_bytes(path, whole.substr(0, size));
    CHECK_THROWS_AS(nn::load_tensors(path), nn::FormatError);
  }
  // Empty tensors share offsets without overlapping.
  write_bytes(path, st_file("{" + entry("e", "F32", "[0]", 0, 0) + "," + entry("f", "F64", "[0,2]", 0, 0) + "," +
                            entry("a", "F32", "[1]", 0, 4) + "," + entry("z", "F32", "[0]", 4, 4) + "}",
                            le_bytes(xt::xarray<float>{7.0f})));
  const nn::TensorFile ok = nn::load_tensors(path);
  REQUIRE(ok.tensors.size() == 4);
  CHECK(ok.tensors[0].name == "e");
  CHECK(ok.tensors[1].name == "f");
  CHECK(ok.get<float>("a").item() == 7.0f);
  CHECK(ok.get<double>("f").shape() == Shape{0, 2});
}

TEST_CASE("deeply nested or huge header values give a short message, never a crash") {
  TempDir dir;
  const std::string path = dir / "corrupt.safetensors";
  // 75,000 nested arrays as a shape: refused before parsing, naming the tensor.
  const std::size_t deep = 75'000;
  const std::string nested = std::string(deep, '[') + std::string(deep, ']');
  write_bytes(path, st_file(R"({"w":{"dtype":"F32","shape":)" + nested + R"(,"data_offsets":[0,0]}})"));
  const std::string part = path + ": tensor \"w\": \"shape\" nests arrays or objects more than 16 deep";
  CHECK_THROWS_WITH_AS(nn::load_tensors(path), doctest::Contains(part.c_str()), nn::FormatError);
  tg::Generator gen(1);
  Tiny<float> net(gen);
  CHECK_THROWS_WITH_AS(nn::load(net, path), doctest::Contains(part.c_str()), nn::FormatError);
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
  CHECK(nn::load_tensors(path).get<float>(brackets).item() == 2.5f);

  // Long names and values from the header are shortened in messages.
  auto message_of = [&](const std::string& bytes) {
    write_bytes(path, bytes);
    try {
      nn::load_tensors(path);
    } catch (const nn::FormatError& e) {
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
  CHECK_THROWS_WITH_AS(nn::load_tensors(path),
                       doctest::Contains((path + ": tensor \"big\" (F32 (1099511627776,)) takes 4398046511104 bytes, "
                                                 "more than this machine's ")
                                             .c_str()),
                       nn::FileError);
}

TEST_CASE("load compares the header with the module before reading any data") {
  TempDir dir;
  tg::Generator gen(3);
  Tiny<float> net(gen);
  const auto before = state_of(net);
  std::vector<xt::xarray<float>> values;
  std::string data;
  for (const auto& named : before) {
    values.push_back(named.second.value());
    data += le_bytes(xt::xarray<float>(named.second.value() + 1.0f));
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
                         nn::MismatchError);
  });
  CHECK(growth < 16u << 20);
  const auto after = state_of(net);
  for (std::size_t i = 0; i < after.size(); ++i) CHECK(same_bits(after[i].second.value(), values[i]));

  // The same file without the extra tensor loads, each value from its own range.
  header = "{" + entry("inner.count", "F32", "[]", 52, 56) + "," + entry("running", "F32", "[3]", 40, 52) + "," +
           entry("weight", "F32", "[2,3]", 0, 24) + "," + entry("inner.scale", "F32", "[1]", 36, 40) + "," +
           entry("bias", "F32", "[3]", 24, 36) + "}";
  write_bytes(path, st_file(header, data));
  nn::load(net, path);
  for (std::size_t i = 0; i < after.size(); ++i)
    CHECK(same_bits(after[i].second.value(), xt::xarray<float>(values[i] + 1.0f)));
}

TEST_CASE("FIFOs and devices are refused, not waited on") {
  TempDir dir;
  const std::string path = dir / "model.safetensors";
  Fifo fifo(path);
  REQUIRE(fifo.created());
  const std::string reading = path + ": cannot open for reading: it is a FIFO, not a regular file";
  CHECK_THROWS_WITH_AS(nn::load_tensors(path), doctest::Contains(reading.c_str()), nn::FileError);
  tg::Generator gen(1);
  Tiny<float> net(gen);
  CHECK_THROWS_WITH_AS(nn::load(net, path), doctest::Contains(reading.c_str()), nn::FileError);
  CHECK_THROWS_WITH_AS(nn::save(net, path),
                       doctest::Contains((path + ": cannot open for writing: it is a FIFO, not a regular file").c_str()),
                       nn::FileError);
  if (fs::exists("/dev/null"))
    CHECK_THROWS_WITH_AS(nn::load_tensors("/dev/null"),
                         doctest::Contains("/dev/null: cannot open for reading: it is a character device"),
                         nn::FileError);
}

TEST_CASE("the error classes") {
  static_assert(std::is_base_of_v<tg::Error, nn::SerializeError>);
  static_assert(std::is_base_of_v<nn::SerializeError, nn::FileError>);
  static_assert(std::is_base_of_v<nn::SerializeError, nn::FormatError>);
  static_assert(std::is_base_of_v<nn::SerializeError, nn::MismatchError>);
  CHECK(true);
}
