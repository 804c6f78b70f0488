/**
 * Hand-written CUDA kernels of the three kinds the dialect will emit (an elementwise chain, a
 * warp-shuffle reduction, a tensor-core tile), shared by the nvcc compile check
 * (test/codegen/cuda/nvcc.test.ts) and the GPU smoke test (smoke.ts). No #include: NVRTC
 * compiles them as they are, and bf16 travels as raw bits.
 */

/** y[i] = a * x[i] + y[i], i < n (the graph-replay check launches it repeatedly). */
export const AXPY = `extern "C" __global__ void axpy(float* __restrict__ y, const float* __restrict__ x, float a, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) y[i] = a * x[i] + y[i];
}
`;

/** out[i] = gelu_tanh(a[i] * b[i] + c), i < n. */
export const ELEMENTWISE = `extern "C" __global__ void mul_add_gelu(const float* __restrict__ a, const float* __restrict__ b,
                                        float c, float* __restrict__ out, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  float x = a[i] * b[i] + c;
  float inner = 0.7978845608028654f * (x + 0.044715f * x * x * x);
  out[i] = 0.5f * x * (1.0f + tanhf(inner));
}
`;

/** out[blockIdx.x] = sum of in[blockIdx.x * n .. + n): one block per row, warp shuffles then shared memory. */
export const ROW_SUM = `extern "C" __global__ void row_sum(const float* __restrict__ in, float* __restrict__ out, int n) {
  __shared__ float partial[32];
  const float* row = in + (long long)blockIdx.x * n;
  float sum = 0.0f;
  for (int i = threadIdx.x; i < n; i += blockDim.x) sum += row[i];
  for (int offset = 16; offset > 0; offset >>= 1) sum += __shfl_down_sync(0xffffffffu, sum, offset);
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) partial[warp] = sum;
  __syncthreads();
  if (warp == 0) {
    int warps = (blockDim.x + 31) >> 5;
    sum = lane < warps ? partial[lane] : 0.0f;
    for (int offset = 16; offset > 0; offset >>= 1) sum += __shfl_down_sync(0xffffffffu, sum, offset);
    if (lane == 0) out[blockIdx.x] = sum;
  }
}
`;

/**
 * One warp computes D = A * B + C for one 16x8x16 tile with mma.sync (bf16 inputs, f32
 * accumulate). A is 16x16 row-major, B is 16x8 stored column-major (B[k][n] at n*16 + k), C and
 * D are 16x8 row-major. Fragment layouts follow the PTX ISA for m16n8k16 (.bf16): with
 * g = lane / 4 and t = lane % 4, A holds rows g and g+8, columns 2t, 2t+1 (+8); B holds k rows
 * 2t, 2t+1 (+8) of column g; C/D hold rows g and g+8, columns 2t, 2t+1.
 */
export const MMA_BF16 = `extern "C" __global__ void mma_bf16_16x8x16(const unsigned short* __restrict__ a,
                                            const unsigned short* __restrict__ b,
                                            const float* __restrict__ c, float* __restrict__ d) {
  const int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  auto pack = [](unsigned short lo, unsigned short hi) { return (unsigned)lo | ((unsigned)hi << 16); };
  unsigned a0 = pack(a[g * 16 + 2 * t], a[g * 16 + 2 * t + 1]);
  unsigned a1 = pack(a[(g + 8) * 16 + 2 * t], a[(g + 8) * 16 + 2 * t + 1]);
  unsigned a2 = pack(a[g * 16 + 2 * t + 8], a[g * 16 + 2 * t + 9]);
  unsigned a3 = pack(a[(g + 8) * 16 + 2 * t + 8], a[(g + 8) * 16 + 2 * t + 9]);
  unsigned b0 = pack(b[g * 16 + 2 * t], b[g * 16 + 2 * t + 1]);
  unsigned b1 = pack(b[g * 16 + 2 * t + 8], b[g * 16 + 2 * t + 9]);
  float c0 = c[g * 8 + 2 * t], c1 = c[g * 8 + 2 * t + 1];
  float c2 = c[(g + 8) * 8 + 2 * t], c3 = c[(g + 8) * 8 + 2 * t + 1];
  float d0, d1, d2, d3;
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
      "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%10, %11, %12, %13};\\n"
      : "=f"(d0), "=f"(d1), "=f"(d2), "=f"(d3)
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1), "f"(c0), "f"(c1), "f"(c2), "f"(c3));
  d[g * 8 + 2 * t] = d0;
  d[g * 8 + 2 * t + 1] = d1;
  d[(g + 8) * 8 + 2 * t] = d2;
  d[(g + 8) * 8 + 2 * t + 1] = d3;
}
`;

/** Does not compile: an undeclared identifier. */
export const BROKEN = `extern "C" __global__ void broken(float* out) {
  out[threadIdx.x] = undeclared_scale * 2.0f;
}
`;
