// The caching device allocator and the pinned staging pool.
//
// Device blocks are rounded up to a size bucket and, once freed, kept on a free list per
// (stream, bucket): a training step allocates the same sizes every call, so after the first
// call every allocation is a cache hit and nothing reaches cuMemAlloc. Reuse is limited to the
// stream the block was freed on, so stream order alone keeps a reused block's last reader ahead
// of its next writer.
#pragma once
#include <cuda.h>

#include <cstdint>
#include <iterator>
#include <map>
#include <mutex>
#include <utility>
#include <vector>

namespace nexgrad {

// The bucket a request of `bytes` is served from (see kBucketRules in allocator.cc).
size_t BucketSize(size_t bytes);

struct AllocatorStats {
  size_t bytesInUse = 0;      // bucket bytes handed out and not yet freed
  size_t bytesCached = 0;     // bucket bytes on free lists
  size_t peakBytesInUse = 0;  // since creation or the last ResetPeak
  uint64_t driverAllocations = 0;
  uint64_t cacheHits = 0;
  uint64_t cacheMisses = 0;
};

class DeviceAllocator {
 public:
  // Serves from the cache or cuMemAlloc; on CUDA_ERROR_OUT_OF_MEMORY frees the cache and retries.
  CUresult Allocate(size_t bytes, CUstream stream, CUdeviceptr* out);
  // Moves a live block to its free list; false when `ptr` is not a live block's base.
  bool Release(CUdeviceptr ptr, CUstream stream);
  // cuMemFree on every cached block; returns the bytes given back.
  size_t Trim();
  // Whether [ptr, ptr + bytes] lies inside one live block's requested size.
  bool Contains(CUdeviceptr ptr, size_t bytes) const;
  void ResetPeak() { stats_.peakBytesInUse = stats_.bytesInUse; }
  const AllocatorStats& Stats() const { return stats_; }

 private:
  struct Block {
    size_t requested;
    size_t bucket;
  };
  std::map<CUdeviceptr, Block> live_;
  std::map<std::pair<CUstream, size_t>, std::vector<CUdeviceptr>> free_;
  AllocatorStats stats_;
};

// Page-locked host buffers for copies: the device copies from/to them asynchronously, so a
// copy neither blocks the event loop nor depends on a JS buffer staying put. Release may run
// on a driver callback thread; everything else runs on the JS thread.
class PinnedPool {
 public:
  CUresult Acquire(size_t bytes, void** out, size_t* bucket);
  void Release(void* ptr, size_t bucket);
  size_t Trim();
  size_t CachedBytes();

 private:
  std::mutex mutex_;
  std::map<size_t, std::vector<void*>> free_;
  size_t cached_ = 0;
};

}  // namespace nexgrad
