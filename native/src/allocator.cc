#include "allocator.h"

#include "driver.h"

namespace nexgrad {
namespace {

// Bucket granularity by request size: fine steps for small tensors, coarser ones for large
// (at most ~6% and ~12.5% padding in the two upper bands), so repeated shapes share buckets.
struct BucketRule {
  size_t upTo;         // requests of at most this many bytes...
  size_t granularity;  // ...round up to a multiple of this
};
constexpr size_t kKiB = 1024;
constexpr size_t kMiB = 1024 * kKiB;
constexpr BucketRule kBucketRules[] = {
    {1 * kMiB, 512},
    {16 * kMiB, 64 * kKiB},
    {SIZE_MAX, 2 * kMiB},
};

}  // namespace

size_t BucketSize(size_t bytes) {
  if (bytes == 0) bytes = 1;  // a zero-size tensor still gets a distinct, valid address
  for (const BucketRule& rule : kBucketRules) {
    if (bytes <= rule.upTo) return (bytes + rule.granularity - 1) / rule.granularity * rule.granularity;
  }
  return bytes;  // unreachable: the last rule covers every size
}

CUresult DeviceAllocator::Allocate(size_t bytes, CUstream stream, CUdeviceptr* out) {
  const size_t bucket = BucketSize(bytes);
  auto cached = free_.find({stream, bucket});
  if (cached != free_.end() && !cached->second.empty()) {
    *out = cached->second.back();
    cached->second.pop_back();
    stats_.bytesCached -= bucket;
    stats_.cacheHits++;
  } else {
    CUresult result = Driver().cuMemAlloc(out, bucket);
    if (result == CUDA_ERROR_OUT_OF_MEMORY && stats_.bytesCached > 0) {
      Trim();
      result = Driver().cuMemAlloc(out, bucket);
    }
    if (result != CUDA_SUCCESS) return result;
    stats_.driverAllocations++;
    stats_.cacheMisses++;
  }
  live_[*out] = Block{bytes, bucket};
  stats_.bytesInUse += bucket;
  if (stats_.bytesInUse > stats_.peakBytesInUse) stats_.peakBytesInUse = stats_.bytesInUse;
  return CUDA_SUCCESS;
}

bool DeviceAllocator::Release(CUdeviceptr ptr, CUstream stream) {
  auto found = live_.find(ptr);
  if (found == live_.end()) return false;
  const size_t bucket = found->second.bucket;
  live_.erase(found);
  free_[{stream, bucket}].push_back(ptr);
  stats_.bytesInUse -= bucket;
  stats_.bytesCached += bucket;
  return true;
}

size_t DeviceAllocator::Trim() {
  if (stats_.bytesCached == 0) return 0;
  // A cached block may still be read by queued work on its stream; let that finish first.
  Driver().cuCtxSynchronize();
  size_t freed = 0;
  for (auto& [key, blocks] : free_) {
    for (CUdeviceptr ptr : blocks) {
      Driver().cuMemFree(ptr);
      freed += key.second;
    }
  }
  free_.clear();
  stats_.bytesCached = 0;
  return freed;
}

bool DeviceAllocator::Contains(CUdeviceptr ptr, size_t bytes) const {
  auto after = live_.upper_bound(ptr);
  if (after == live_.begin()) return false;
  const auto& [base, block] = *std::prev(after);
  const CUdeviceptr offset = ptr - base;
  return offset <= block.requested && bytes <= block.requested - offset;
}

CUresult PinnedPool::Acquire(size_t bytes, void** out, size_t* bucket) {
  *bucket = BucketSize(bytes);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto cached = free_.find(*bucket);
    if (cached != free_.end() && !cached->second.empty()) {
      *out = cached->second.back();
      cached->second.pop_back();
      cached_ -= *bucket;
      return CUDA_SUCCESS;
    }
  }
  return Driver().cuMemHostAlloc(out, *bucket, 0);
}

void PinnedPool::Release(void* ptr, size_t bucket) {
  std::lock_guard<std::mutex> lock(mutex_);
  free_[bucket].push_back(ptr);
  cached_ += bucket;
}

size_t PinnedPool::Trim() {
  std::map<size_t, std::vector<void*>> blocks;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    blocks.swap(free_);
    cached_ = 0;
  }
  size_t freed = 0;
  for (auto& [bucket, ptrs] : blocks) {
    for (void* ptr : ptrs) {
      Driver().cuMemFreeHost(ptr);
      freed += bucket;
    }
  }
  return freed;
}

size_t PinnedPool::CachedBytes() {
  std::lock_guard<std::mutex> lock(mutex_);
  return cached_;
}

}  // namespace nexgrad
