#include "core/mapped_file.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace oss4 {

MappedFile::~MappedFile() { reset(); }

MappedFile::MappedFile(MappedFile&& o) noexcept : data_(o.data_), size_(o.size_), path_(std::move(o.path_)) {
  o.data_ = nullptr;
  o.size_ = 0;
}

MappedFile& MappedFile::operator=(MappedFile&& o) noexcept {
  if (this != &o) {
    reset();
    data_ = o.data_;
    size_ = o.size_;
    path_ = std::move(o.path_);
    o.data_ = nullptr;
    o.size_ = 0;
  }
  return *this;
}

void MappedFile::reset() {
  if (data_ != nullptr && size_ > 0) munmap(const_cast<uint8_t*>(data_), size_);
  data_ = nullptr;
  size_ = 0;
}

Result<MappedFile> MappedFile::open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return error(path + ": cannot open: " + std::strerror(errno));
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    int e = errno;
    ::close(fd);
    return error(path + ": cannot stat: " + std::strerror(e));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return error(path + ": not a regular file");
  }
  MappedFile f;
  f.path_ = path;
  f.size_ = static_cast<size_t>(st.st_size);
  if (f.size_ > 0) {
    void* p = mmap(nullptr, f.size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      int e = errno;
      ::close(fd);
      f.size_ = 0;
      return error(path + ": mmap failed: " + std::strerror(e));
    }
    f.data_ = static_cast<const uint8_t*>(p);
  }
  ::close(fd);
  return f;
}

void MappedFile::release(size_t offset, size_t n) const {
  if (data_ == nullptr || offset >= size_) return;
  long page = sysconf(_SC_PAGESIZE);
  size_t begin = (offset + static_cast<size_t>(page) - 1) / static_cast<size_t>(page) * static_cast<size_t>(page);
  size_t end = std::min(size_, offset + n) / static_cast<size_t>(page) * static_cast<size_t>(page);
  if (end > begin) madvise(const_cast<uint8_t*>(data_) + begin, end - begin, MADV_DONTNEED);
}

Result<std::string> read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return error(path + ": cannot open: " + std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return error(path + ": read error");
  return ss.str();
}

Status make_parent_dirs(const std::string& path) {
  std::string dir = path;
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  const size_t slash = dir.rfind('/');
  if (slash == std::string::npos || slash == 0) return ok_status();
  dir.resize(slash);
  // walk down from the top, creating each missing level; a level that exists as a file is an error naming it
  for (size_t pos = 1; pos <= dir.size(); ++pos) {
    if (pos != dir.size() && dir[pos] != '/') continue;
    const std::string level = dir.substr(0, pos);
    if (::mkdir(level.c_str(), 0755) == 0 || errno == EEXIST) {
      if (!is_directory(level)) return error(level + ": exists and is not a directory; cannot create " + path);
      continue;
    }
    return error(level + ": cannot create directory: " + std::strerror(errno));
  }
  return ok_status();
}

std::string temp_path_for(const std::string& path) { return path + ".oss4-tmp." + std::to_string(getpid()); }

namespace {
// the pid of a temporary's name: NAME.oss4-tmp.<pid> (any NAME), or legacy_base.tmp.<pid>; 0 when it is neither.
pid_t temp_owner(const std::string& name, const std::string& legacy_base) {
  auto digits_after = [&](size_t pos) -> pid_t {
    if (pos >= name.size() || name.size() - pos > 9) return 0;
    for (size_t i = pos; i < name.size(); ++i)
      if (name[i] < '0' || name[i] > '9') return 0;
    return static_cast<pid_t>(std::stol(name.substr(pos)));
  };
  static const std::string kTag = ".oss4-tmp.";
  const size_t at = name.rfind(kTag);
  if (at != std::string::npos && at > 0) return digits_after(at + kTag.size());
  const std::string legacy = legacy_base + ".tmp.";
  if (!legacy_base.empty() && name.compare(0, legacy.size(), legacy) == 0) return digits_after(legacy.size());
  return 0;
}
}  // namespace

std::vector<std::string> remove_stale_temps(const std::string& path) {
  std::string p = path;
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  const size_t slash = p.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : p.substr(0, slash));
  const std::string base = slash == std::string::npos ? p : p.substr(slash + 1);
  std::vector<std::string> removed;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return removed;
  std::vector<std::pair<std::string, pid_t>> stale;
  while (dirent* e = readdir(d)) {
    const pid_t pid = temp_owner(e->d_name, base);
    if (pid <= 0 || pid == getpid()) continue;
    if (::kill(pid, 0) == 0 || errno != ESRCH) continue;  // running (or not ours to signal): not stale
    stale.emplace_back(dir + "/" + e->d_name, pid);
  }
  closedir(d);
  for (const auto& [entry, pid] : stale) {
    std::error_code ec;
    std::filesystem::remove_all(entry, ec);
    if (ec) {
      std::fprintf(stderr, "oss4: cannot remove %s, left by process %d that is no longer running: %s\n", entry.c_str(), static_cast<int>(pid),
                   ec.message().c_str());
      continue;
    }
    std::fprintf(stderr, "oss4: removed %s, left by process %d that is no longer running\n", entry.c_str(), static_cast<int>(pid));
    removed.push_back(entry);
  }
  return removed;
}

Status write_file_atomic(const std::string& path, const void* data, size_t n) {
  OSS4_TRY(make_parent_dirs(path));
  remove_stale_temps(path);
  std::string tmp = temp_path_for(path);
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return error(path + ": cannot create " + tmp + ": " + std::strerror(errno));
  const auto* p = static_cast<const uint8_t*>(data);
  size_t left = n;
  while (left > 0) {
    ssize_t w = ::write(fd, p, left);
    if (w < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      return error(path + ": write failed: " + std::strerror(e) + "; nothing written");
    }
    p += w;
    left -= static_cast<size_t>(w);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    const int e = errno;
    ::unlink(tmp.c_str());
    return error(path + ": cannot flush: " + std::strerror(e) + "; nothing written");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    return error(path + ": cannot rename into place: " + std::strerror(e));
  }
  return ok_status();
}

namespace {
bool dir_is_empty(const std::string& dir) {
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return false;
  bool empty = true;
  while (dirent* e = readdir(d)) {
    if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) empty = false;
  }
  closedir(d);
  return empty;
}

// removes the files of a directory this process made, then the directory (no recursion: outputs are flat).
void remove_flat_dir(const std::string& dir) {
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return;
  while (dirent* e = readdir(d)) {
    if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) ::unlink((dir + "/" + e->d_name).c_str());
  }
  closedir(d);
  ::rmdir(dir.c_str());
}
}  // namespace

Status write_directory_atomic(const std::string& out_dir, const std::function<Status(const std::string& tmp_dir)>& fill) {
  std::string out = out_dir;
  while (out.size() > 1 && out.back() == '/') out.pop_back();
  if (out.empty()) return error("no output directory given");
  const bool exists = is_directory(out);
  if (exists && !dir_is_empty(out)) return error(out + ": exists and is not empty; refusing to overwrite it");
  if (!exists && file_exists(out)) return error(out + ": exists and is a file");
  OSS4_TRY(make_parent_dirs(out));
  remove_stale_temps(out);
  const std::string tmp = temp_path_for(out);
  if (::mkdir(tmp.c_str(), 0755) != 0) return error(out + ": cannot create " + tmp + ": " + std::strerror(errno));
  Status s = fill(tmp);
  if (!s.ok()) {
    // errors from inside name the file the user asked for, not the temporary folder (which is removed below)
    std::string m = s.message();
    for (size_t at = m.find(tmp); at != std::string::npos; at = m.find(tmp, at + out.size())) m.replace(at, tmp.size(), out);
    s = error(m);
  }
  if (s.ok() && exists && ::rmdir(out.c_str()) != 0) s = error(out + ": cannot replace the empty directory: " + std::strerror(errno));
  if (s.ok() && std::rename(tmp.c_str(), out.c_str()) != 0) s = error(out + ": cannot rename into place: " + std::strerror(errno));
  if (!s.ok()) remove_flat_dir(tmp);
  return s;
}

Status copy_file_atomic(const std::string& from, const std::string& to) {
  OSS4_ASSIGN_OR_RETURN(std::string bytes, read_text_file(from));
  return write_file_atomic(to, bytes.data(), bytes.size());
}

bool file_exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

bool is_directory(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

}  // namespace oss4
