#include "format/safetensors.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>

#include "format/json_read.h"

namespace oss4 {

using json = nlohmann::json;

namespace {
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;  // the format's own limit
constexpr size_t kMaxRank = 8;

std::string join_dir(const std::string& dir, const std::string& name) {
  if (dir.empty() || dir.back() == '/') return dir + name;
  return dir + "/" + name;
}

// n1 * n2 without overflow past limit.
bool mul_ok(uint64_t a, uint64_t b, uint64_t* out) {
  if (a != 0 && b > UINT64_MAX / a) return false;
  *out = a * b;
  return true;
}
}  // namespace

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

std::string TensorView::describe() const { return name + " " + shape_str(shape) + " " + dtype_name(dtype); }

Result<SafetensorsHeader> parse_safetensors_header(const uint8_t* bytes, size_t n_bytes, uint64_t file_size) {
  if (file_size < 8 || n_bytes < 8) return error("file too short for a safetensors header (" + std::to_string(file_size) + " bytes)");
  uint64_t hlen = 0;
  for (int i = 7; i >= 0; --i) hlen = (hlen << 8) | bytes[i];
  if (hlen < 2) return error("header length " + std::to_string(hlen) + " is too small");
  if (hlen > kMaxHeaderBytes) return error("header length " + std::to_string(hlen) + " exceeds the 100 MB limit");
  if (hlen > file_size - 8) {
    return error("header length " + std::to_string(hlen) + " runs past the end of the file (" + std::to_string(file_size) +
                 " bytes): truncated or not a safetensors file");
  }
  if (8 + hlen > n_bytes) return error("header not fully available");
  const char* text = reinterpret_cast<const char*>(bytes + 8);

  // duplicate top-level keys are an error (nlohmann would silently keep the last one).
  std::set<std::string> seen_keys;
  std::string duplicate;
  json::parser_callback_t cb = [&](int depth, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::key && depth == 1) {
      std::string k = parsed.get<std::string>();
      if (!seen_keys.insert(k).second && duplicate.empty()) duplicate = k;
    }
    return true;
  };
  if (json_depth(std::string_view(text, hlen)) > kMaxJsonDepth)
    return error("header nests deeper than " + std::to_string(kMaxJsonDepth) + " levels");
  json h = json::parse(text, text + hlen, cb, /*allow_exceptions=*/false);
  if (h.is_discarded()) return error("header is not well-formed JSON");
  if (!h.is_object()) return error("header JSON is not an object");
  if (!duplicate.empty()) return error("tensor '" + duplicate + "' appears twice in the header");

  SafetensorsHeader out;
  out.data_start = 8 + hlen;
  const uint64_t data_size = file_size - out.data_start;
  for (auto it = h.begin(); it != h.end(); ++it) {
    const std::string& name = it.key();
    const json& v = it.value();
    if (name == "__metadata__") {
      if (!v.is_object()) return error("__metadata__ is not an object");
      for (auto m = v.begin(); m != v.end(); ++m) {
        if (!m.value().is_string()) return error("__metadata__ value '" + m.key() + "' is not a string");
        out.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    auto bad = [&](const std::string& why) { return error("tensor '" + name + "': " + why); };
    if (!v.is_object()) return bad("entry is not an object");
    auto dt = v.find("dtype");
    auto sh = v.find("shape");
    auto off = v.find("data_offsets");
    if (dt == v.end() || !dt->is_string()) return bad("missing or non-string dtype");
    if (sh == v.end() || !sh->is_array()) return bad("missing or non-array shape");
    if (off == v.end() || !off->is_array() || off->size() != 2) return bad("data_offsets must be [begin, end]");
    auto dtype = dtype_from_name(dt->get<std::string>());
    if (!dtype) return bad("unsupported dtype '" + dt->get<std::string>() + "'");
    if (sh->size() > kMaxRank) return bad("rank " + std::to_string(sh->size()) + " is too large");
    SafetensorsHeader::Entry e{name, *dtype, {}, 0, 0};
    uint64_t numel = 1;
    for (const auto& d : *sh) {
      if (!d.is_number_unsigned()) return bad("shape has a non-integer or negative dimension");
      uint64_t dim = d.get<uint64_t>();
      if (dim > (1ull << 40)) return bad("dimension " + std::to_string(dim) + " is too large");
      if (!mul_ok(numel, dim, &numel)) return bad("shape overflows");
      e.shape.push_back(static_cast<int64_t>(dim));
    }
    for (const auto& o : *off)
      if (!o.is_number_unsigned()) return bad("data_offsets are not non-negative integers");
    e.begin = (*off)[0].get<uint64_t>();
    e.end = (*off)[1].get<uint64_t>();
    if (e.begin > e.end) return bad("data_offsets begin > end");
    if (e.end > data_size) {
      return bad("data_offsets [" + std::to_string(e.begin) + ", " + std::to_string(e.end) + ") run past the end of the data (" +
                 std::to_string(data_size) + " bytes): file truncated?");
    }
    uint64_t nbytes = 0;
    if (!mul_ok(numel, dtype_size(*dtype), &nbytes) || nbytes != e.end - e.begin) {
      return bad("shape " + shape_str(e.shape) + " x " + dtype_name(*dtype) + " needs " + std::to_string(numel * dtype_size(*dtype)) +
                 " bytes but data_offsets span " + std::to_string(e.end - e.begin));
    }
    out.entries.push_back(std::move(e));
  }
  std::sort(out.entries.begin(), out.entries.end(), [](const auto& a, const auto& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  for (size_t i = 1; i < out.entries.size(); ++i) {
    const auto& a = out.entries[i - 1];
    const auto& b = out.entries[i];
    if (b.begin < a.end) return error("tensors '" + a.name + "' and '" + b.name + "' overlap");
  }
  return out;
}

Result<std::unique_ptr<SafetensorsFile>> SafetensorsFile::open(const std::string& path) {
  auto f = std::make_unique<SafetensorsFile>();
  OSS4_ASSIGN_OR_RETURN(f->file_, MappedFile::open(path));
  auto hdr = parse_safetensors_header(f->file_.data(), f->file_.size(), f->file_.size());
  if (!hdr.ok()) return hdr.status().with_context(path);
  f->metadata_ = hdr->metadata;
  for (auto& e : hdr->entries) {
    TensorView t;
    t.name = e.name;
    t.dtype = e.dtype;
    t.shape = e.shape;
    t.file_offset = hdr->data_start + e.begin;
    t.nbytes = e.end - e.begin;
    t.data = f->file_.data() + t.file_offset;
    t.path = &f->file_.path();
    if (t.nbytes > 0 && t.file_offset % dtype_size(t.dtype) != 0)
      return error(path + ": tensor '" + t.name + "' is misaligned for " + dtype_name(t.dtype));
    f->index_[t.name] = f->tensors_.size();
    f->tensors_.push_back(std::move(t));
  }
  return f;
}

const TensorView* SafetensorsFile::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

struct TensorStore::RequiredLog {
  std::mutex mu;
  std::set<std::string> names;
};

Result<TensorStore> TensorStore::open_file(const std::string& path) {
  TensorStore s;
  s.required_ = std::make_shared<RequiredLog>();
  auto slash = path.find_last_of('/');
  s.dir_ = slash == std::string::npos ? "." : path.substr(0, slash);
  OSS4_ASSIGN_OR_RETURN(auto f, SafetensorsFile::open(path));
  for (const auto& t : f->tensors()) s.by_name_[t.name] = &t;
  s.files_.push_back(std::move(f));
  return s;
}

Result<TensorStore> TensorStore::open_dir(const std::string& dir) {
  if (!is_directory(dir)) return error(dir + ": not a directory");
  TensorStore s;
  s.required_ = std::make_shared<RequiredLog>();
  s.dir_ = dir;
  std::vector<std::string> files;
  std::string index_path = join_dir(dir, "model.safetensors.index.json");
  std::map<std::string, std::string> weight_map;
  if (file_exists(index_path)) {
    OSS4_ASSIGN_OR_RETURN(std::string text, read_text_file(index_path));
    auto parsed = parse_json(text);
    if (!parsed.ok()) return parsed.status().with_context(index_path);
    const json& j = parsed.value();
    if (!j.is_object()) return error(index_path + ": not a JSON object");
    auto wm = j.find("weight_map");
    if (wm == j.end() || !wm->is_object()) return error(index_path + ": missing weight_map object");
    std::set<std::string> uniq;
    for (auto it = wm->begin(); it != wm->end(); ++it) {
      if (!it.value().is_string()) return error(index_path + ": weight_map['" + it.key() + "'] is not a string");
      std::string fname = it.value().get<std::string>();
      if (fname.find('/') != std::string::npos || fname == ".." || fname.empty())
        return error(index_path + ": weight_map['" + it.key() + "'] names a file outside the directory: " + fname);
      weight_map[it.key()] = fname;
      if (uniq.insert(fname).second) files.push_back(fname);
    }
  } else if (file_exists(join_dir(dir, "model.safetensors"))) {
    files.push_back("model.safetensors");
  } else {
    DIR* d = opendir(dir.c_str());
    if (d == nullptr) return error(dir + ": cannot list: " + std::strerror(errno));
    while (dirent* e = readdir(d)) {
      std::string n = e->d_name;
      if (n.size() > 12 && n.compare(n.size() - 12, 12, ".safetensors") == 0) files.push_back(n);
    }
    closedir(d);
    std::sort(files.begin(), files.end());
    if (files.empty()) return error(dir + ": no model.safetensors.index.json and no .safetensors files");
  }
  for (const auto& fname : files) {
    OSS4_ASSIGN_OR_RETURN(auto f, SafetensorsFile::open(join_dir(dir, fname)));
    for (const auto& t : f->tensors()) {
      if (!weight_map.empty()) {
        auto it = weight_map.find(t.name);
        // the index decides which file holds a tensor; other copies are ignored.
        if (it == weight_map.end() || it->second != fname) continue;
      }
      if (s.by_name_.count(t.name)) return error(f->path() + ": tensor '" + t.name + "' also appears in another shard");
      s.by_name_[t.name] = &t;
    }
    s.files_.push_back(std::move(f));
  }
  for (const auto& [name, fname] : weight_map) {
    if (!s.by_name_.count(name)) return error(join_dir(dir, fname) + ": tensor '" + name + "' listed in the index is missing");
  }
  return s;
}

const TensorView* TensorStore::find(const std::string& name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : it->second;
}

Result<const TensorView*> TensorStore::require(const std::string& name) const {
  const TensorView* t = find(name);
  if (t == nullptr) return error(dir_ + ": missing tensor '" + name + "'");
  if (required_) {
    std::lock_guard<std::mutex> lock(required_->mu);
    required_->names.insert(name);
  }
  return t;
}

std::vector<std::string> TensorStore::names_not_required() const {
  std::vector<std::string> out;
  if (!required_) return names();
  std::lock_guard<std::mutex> lock(required_->mu);
  for (const auto& [n, t] : by_name_)
    if (!required_->names.count(n)) out.push_back(n);
  return out;
}

Result<const TensorView*> TensorStore::require(const std::string& name, DType dtype, const std::vector<int64_t>& shape) const {
  OSS4_ASSIGN_OR_RETURN(const TensorView* t, require(name));
  if (t->dtype != dtype || t->shape != shape) {
    return error(*t->path + ": tensor '" + name + "' is " + shape_str(t->shape) + " " + dtype_name(t->dtype) + ", expected " +
                 shape_str(shape) + " " + dtype_name(dtype));
  }
  return t;
}

std::vector<std::string> TensorStore::names() const {
  std::vector<std::string> out;
  for (const auto& [n, t] : by_name_) out.push_back(n);
  return out;
}

size_t TensorStore::total_bytes() const {
  size_t n = 0;
  for (const auto& [name, t] : by_name_) n += t->nbytes;
  return n;
}

void TensorStore::release(const TensorView& t) const {
  for (const auto& f : files_)
    if (&f->path() == t.path) f->file().release(t.file_offset, t.nbytes);
}

void TensorStore::release_bytes(const uint8_t* p, size_t n) const {
  for (const auto& f : files_) {
    const uint8_t* base = f->file().data();
    const auto a = reinterpret_cast<uintptr_t>(p), lo = reinterpret_cast<uintptr_t>(base);
    if (base != nullptr && a >= lo && a - lo < f->file().size()) f->file().release(static_cast<size_t>(a - lo), n);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// writer

SafetensorsWriter::~SafetensorsWriter() {
  if (fd_ >= 0) {
    ::close(fd_);
    ::unlink(tmp_path_.c_str());
  }
}

void SafetensorsWriter::declare(const std::string& name, DType dtype, const std::vector<int64_t>& shape) {
  OSS4_CHECK(fd_ < 0);
  uint64_t n = dtype_size(dtype);
  for (int64_t d : shape) n *= static_cast<uint64_t>(d);
  decls_.push_back({name, dtype, shape, total_, total_ + n});
  total_ += n;
}

Status SafetensorsWriter::begin() {
  json h = json::object();
  if (!metadata_.empty()) h["__metadata__"] = metadata_;
  for (const auto& d : decls_) {
    if (h.contains(d.name)) return error(path_ + ": tensor '" + d.name + "' declared twice");
    h[d.name] = {{"dtype", dtype_name(d.dtype)}, {"shape", d.shape}, {"data_offsets", {d.begin, d.end}}};
  }
  std::string text = h.dump();
  while ((8 + text.size()) % 8 != 0) text.push_back(' ');  // keeps tensor data 8-byte aligned
  OSS4_TRY(make_parent_dirs(path_));
  remove_stale_temps(path_);
  tmp_path_ = temp_path_for(path_);
  fd_ = ::open(tmp_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) return error(path_ + ": cannot create " + tmp_path_ + ": " + std::strerror(errno));
  uint8_t len[8];
  uint64_t n = text.size();
  for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(n >> (8 * i));
  OSS4_TRY(write_raw(len, 8));
  OSS4_TRY(write_raw(text.data(), text.size()));
  written_ = 0;
  return ok_status();
}

Status SafetensorsWriter::write(const void* data, size_t n) {
  OSS4_CHECK(fd_ >= 0);
  if (written_ + n > total_) return error(path_ + ": more tensor bytes written than declared");
  OSS4_TRY(write_raw(data, n));
  written_ += n;
  return ok_status();
}

Status SafetensorsWriter::write_raw(const void* data, size_t n) {
  const auto* p = static_cast<const uint8_t*>(data);
  while (n > 0) {
    ssize_t w = ::write(fd_, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return error(path_ + ": write failed: " + std::strerror(errno) + "; nothing written");
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
  return ok_status();
}

Status SafetensorsWriter::finish() {
  OSS4_CHECK(fd_ >= 0);
  if (written_ != total_) {
    return error(path_ + ": " + std::to_string(written_) + " tensor bytes written, " + std::to_string(total_) + " declared");
  }
  int fd = fd_;
  fd_ = -1;
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    const int e = errno;
    ::unlink(tmp_path_.c_str());
    return error(path_ + ": cannot flush: " + std::strerror(e) + "; nothing written");
  }
  if (std::rename(tmp_path_.c_str(), path_.c_str()) != 0) {
    int e = errno;
    ::unlink(tmp_path_.c_str());
    return error(path_ + ": cannot rename into place: " + std::strerror(e));
  }
  return ok_status();
}

}  // namespace oss4
