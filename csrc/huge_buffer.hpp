// Large scratch buffers on transparent huge pages.
//
// An n x p buffer on 4 KB pages costs one page fault per 4 KB on first touch (~0.1 s at
// 432 MB) and one TLB miss per random access; 2 MB pages cut both. HugeBuffer is
// uninitialised (aligned_alloc); ZeroBuffer is zero-filled by the kernel (an anonymous
// mapping; calloc when small), so a table of totals needs no memset of its own.
#pragma once

#include <sys/mman.h>

#include <algorithm>
#include <cstddef>
#include <cstdlib>
#include <memory>
#include <new>

#include "common.hpp"

namespace fastpanel {

constexpr std::size_t kHugePage = std::size_t{1} << 21;

inline std::size_t huge_round(std::size_t bytes) {
    return (std::max<std::size_t>(bytes, 1) + kHugePage - 1) / kHugePage * kHugePage;
}

template <typename T>
struct HugeBuffer {
    struct Free { void operator()(T* p) const { std::free(p); } };
    std::unique_ptr<T, Free> ptr;
    explicit HugeBuffer(i64 count) {
        const std::size_t bytes = huge_round(static_cast<std::size_t>(count) * sizeof(T));
        void* raw = std::aligned_alloc(kHugePage, bytes);
        if (!raw) throw std::bad_alloc();
#ifdef MADV_HUGEPAGE
        madvise(raw, bytes, MADV_HUGEPAGE);
#endif
        ptr.reset(static_cast<T*>(raw));
    }
    T* get() const { return ptr.get(); }
};

template <typename T>
class ZeroBuffer {
public:
    explicit ZeroBuffer(i64 count) {
        const std::size_t bytes = std::max<std::size_t>(static_cast<std::size_t>(count) * sizeof(T), 1);
        if (bytes < kSmall) {  // below two huge pages: calloc (a huge page would zero 2 MB)
            ptr_ = static_cast<T*>(std::calloc(bytes, 1));
            if (!ptr_) throw std::bad_alloc();
            return;
        }
        bytes_ = huge_round(bytes);
        void* raw = mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (raw == MAP_FAILED) throw std::bad_alloc();
#ifdef MADV_HUGEPAGE
        madvise(raw, bytes_, MADV_HUGEPAGE);
#endif
        ptr_ = static_cast<T*>(raw);
    }
    ZeroBuffer(const ZeroBuffer&) = delete;
    ZeroBuffer& operator=(const ZeroBuffer&) = delete;
    ~ZeroBuffer() {
        if (bytes_) munmap(ptr_, bytes_);
        else std::free(ptr_);
    }
    T* get() const { return ptr_; }

private:
    static constexpr std::size_t kSmall = 2 * kHugePage;
    std::size_t bytes_ = 0;  // of the mapping; 0: calloc'ed
    T* ptr_ = nullptr;
};

}  // namespace fastpanel
