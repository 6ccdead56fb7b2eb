// scripts/gpu-probe's CUDA program: what a skiff GPU container sees, and a kernel run.
// Lists the /dev/nvidia* nodes it has, the devices CUDA enumerates (name, UUID), then
// adds two vectors on each device and checks the sums. Exit 0 only if all of it worked.
// Built on the lent machine with its own nvcc (-cudart static: only the driver's libcuda
// comes from the host, as in any GPU container).
#include <cstdio>
#include <cstring>
#include <dirent.h>
#include <cuda_runtime.h>

__global__ void add(const float *a, const float *b, float *c, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) c[i] = a[i] + b[i];
}

int main() {
    DIR *dev = opendir("/dev");
    if (dev != nullptr) {
        for (dirent *e = readdir(dev); e != nullptr; e = readdir(dev))
            if (strncmp(e->d_name, "nvidia", 6) == 0) printf("device node: /dev/%s\n", e->d_name);
        closedir(dev);
    }
    int count = 0;
    cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess) {
        printf("cudaGetDeviceCount: %s\n", cudaGetErrorString(err));
        return 1;
    }
    printf("CUDA devices: %d\n", count);
    const int n = 1 << 20;
    for (int d = 0; d < count; d++) {
        cudaDeviceProp prop;
        cudaGetDeviceProperties(&prop, d);
        char uuid[64];
        int k = snprintf(uuid, sizeof uuid, "GPU-");
        for (int j = 0; j < 16; j++) {
            k += snprintf(uuid + k, sizeof uuid - k, "%02x", (unsigned char)prop.uuid.bytes[j]);
            if (j == 3 || j == 5 || j == 7 || j == 9) k += snprintf(uuid + k, sizeof uuid - k, "-");
        }
        printf("device %d: %s %s, %d SMs\n", d, prop.name, uuid, prop.multiProcessorCount);
        cudaSetDevice(d);
        float *a, *b, *c;
        if (cudaMalloc(&a, n * 4) || cudaMalloc(&b, n * 4) || cudaMalloc(&c, n * 4)) {
            printf("cudaMalloc failed\n");
            return 1;
        }
        static float host[1 << 20];
        for (int i = 0; i < n; i++) host[i] = (float)i;
        cudaMemcpy(a, host, n * 4, cudaMemcpyHostToDevice);
        cudaMemcpy(b, host, n * 4, cudaMemcpyHostToDevice);
        add<<<(n + 255) / 256, 256>>>(a, b, c, n);
        err = cudaDeviceSynchronize();
        cudaMemcpy(host, c, n * 4, cudaMemcpyDeviceToHost);
        int bad = 0;
        for (int i = 0; i < n; i++) bad += host[i] != 2.0f * (float)i;
        printf("device %d: vector add %s (%s, %d wrong)\n", d, bad || err ? "FAILED" : "ok",
               cudaGetErrorString(err), bad);
        if (bad || err != cudaSuccess) return 1;
        cudaFree(a); cudaFree(b); cudaFree(c);
    }
    return count > 0 ? 0 : 1;
}
