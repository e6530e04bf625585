#pragma once
// A string that keeps up to 31 bytes inside itself and only longer ones on the heap: the email
// of an account record. It is the size of a std::string (32 bytes), whose own buffer holds only
// 15, so a typical address (20 to 30 bytes) costs no heap block of its own, and a reply that shows
// it reads it from the account's own cache lines instead of following a pointer
// (docs/BENCHMARKS.md, "Emails inside the account").
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>

namespace accounts {

class CompactString {
 public:
  static constexpr size_t kInline = 31;

  CompactString() { set_inline_size(0); }
  CompactString(std::string_view text) { assign_new(text); }  // NOLINT: implicit, like std::string
  CompactString(const std::string& text) : CompactString(std::string_view(text)) {}  // NOLINT
  CompactString(const char* text) : CompactString(std::string_view(text)) {}  // NOLINT
  CompactString(const CompactString& other) : CompactString(other.view()) {}
  CompactString(CompactString&& other) noexcept {
    std::memcpy(bytes_, other.bytes_, sizeof bytes_);
    other.set_inline_size(0);
  }
  CompactString& operator=(const CompactString& other) {
    if (this != &other) *this = CompactString(other);
    return *this;
  }
  CompactString& operator=(CompactString&& other) noexcept {
    if (this != &other) {
      release();
      std::memcpy(bytes_, other.bytes_, sizeof bytes_);
      other.set_inline_size(0);
    }
    return *this;
  }
  CompactString& operator=(std::string_view text) { return *this = CompactString(text); }
  CompactString& operator=(const std::string& text) { return *this = CompactString(std::string_view(text)); }
  CompactString& operator=(const char* text) { return *this = CompactString(std::string_view(text)); }
  ~CompactString() { release(); }

  const char* data() const { return on_heap() ? heap_pointer() : bytes_; }
  size_t size() const { return on_heap() ? heap_size() : bytes_[kInline]; }
  bool empty() const { return size() == 0; }
  std::string_view view() const { return {data(), size()}; }
  operator std::string_view() const { return view(); }  // NOLINT: implicit, like std::string
  std::string str() const { return std::string(view()); }

  friend bool operator==(const CompactString& a, const CompactString& b) { return a.view() == b.view(); }
  friend bool operator==(const CompactString& a, std::string_view b) { return a.view() == b; }
  friend bool operator==(const CompactString& a, const std::string& b) { return a.view() == b; }
  friend bool operator==(const CompactString& a, const char* b) { return a.view() == b; }

 private:
  // Inline: the bytes, then their count in the last byte (0..31). On the heap: the pointer, the
  // size, and kHeap in the last byte.
  static constexpr char kHeap = -1;
  bool on_heap() const { return bytes_[kInline] == kHeap; }
  void set_inline_size(size_t n) { bytes_[kInline] = static_cast<char>(n); }
  char* heap_pointer() const {
    char* p;
    std::memcpy(&p, bytes_, sizeof p);
    return p;
  }
  size_t heap_size() const {
    uint64_t n;
    std::memcpy(&n, bytes_ + sizeof(char*), sizeof n);
    return n;
  }
  void assign_new(std::string_view text) {
    if (text.size() <= kInline) {
      if (!text.empty()) std::memcpy(bytes_, text.data(), text.size());
      set_inline_size(text.size());
      return;
    }
    char* p = new char[text.size()];
    std::memcpy(p, text.data(), text.size());
    uint64_t n = text.size();
    std::memcpy(bytes_, &p, sizeof p);
    std::memcpy(bytes_ + sizeof p, &n, sizeof n);
    bytes_[kInline] = kHeap;
  }
  void release() {
    if (on_heap()) delete[] heap_pointer();
    set_inline_size(0);
  }

  char bytes_[kInline + 1];
};

static_assert(sizeof(CompactString) == 32);

}  // namespace accounts
