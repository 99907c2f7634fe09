# The CUDA kernels (oss4_cuda), included from the top-level CMakeLists.txt when OSS4_CUDA_ENABLED.
# Targets: A100 (sm_80), H100/H200 (sm_90a: the -gencode form, an `a` target is not forward compatible) and the
# Blackwell families (sm_100f, sm_120f). ptxas warns on spills and local memory and those warnings fail the build;
# --resource-usage prints registers, shared memory and stack per kernel and target as each file compiles, and the
# target oss4_cuda_resources prints the sm_90a table again on demand (CI: tools/cuda_resources.sh).
enable_language(CUDA)
find_package(CUDAToolkit REQUIRED)
set(CMAKE_CUDA_STANDARD 17)  # CMake 3.25 knows no CUDA20 dialect for nvcc 13; the .cu files need only C++17
set(CMAKE_CUDA_STANDARD_REQUIRED ON)
set(CMAKE_CUDA_RUNTIME_LIBRARY Static)

set(OSS4_CUDA_GENCODE
  -gencode=arch=compute_80,code=sm_80
  -gencode=arch=compute_90a,code=sm_90a
  -gencode=arch=compute_100f,code=sm_100f
  -gencode=arch=compute_120f,code=sm_120f
  CACHE STRING "nvcc -gencode flags of the CUDA kernels")
set(OSS4_CUDA_SOURCES src/backend/cuda/fp4_matmul.cu src/backend/cuda/bf16_matmul.cu src/backend/cuda/ops.cu)

# the backend (cuda_forward.h) with its kernels; oss4_core's backend table (backend.cpp) names it, so the two static
# libraries depend on each other (CMake repeats them on the link line)
add_library(oss4_cuda STATIC ${OSS4_CUDA_SOURCES} src/backend/cuda/upload.cpp src/backend/cuda/cuda_weights.cpp
  src/backend/cuda/cuda_kv.cpp src/backend/cuda/cuda_forward.cpp)
set_target_properties(oss4_cuda PROPERTIES CUDA_ARCHITECTURES OFF POSITION_INDEPENDENT_CODE ON)
target_compile_options(oss4_cuda PRIVATE
  $<$<COMPILE_LANGUAGE:CUDA>:${OSS4_CUDA_GENCODE} -Xptxas=-warn-spills,-warn-lmem-usage,-Werror --resource-usage
    -Werror=all-warnings -Xcompiler=-Wall,-Wextra,-Werror>)
target_link_libraries(oss4_cuda PUBLIC oss4_cuda_host CUDA::cudart_static)
target_compile_definitions(oss4_cuda PUBLIC OSS4_HAVE_CUDA=1)
target_link_libraries(oss4_core PUBLIC oss4_cuda)

# the resource report of one target (sm_90a), printed on demand
set(OSS4_CUDA_RESOURCE_CMDS)
foreach(src ${OSS4_CUDA_SOURCES})
  list(APPEND OSS4_CUDA_RESOURCE_CMDS
    COMMAND ${CMAKE_CUDA_COMPILER} -std=c++17 -I${CMAKE_SOURCE_DIR}/include -I${CMAKE_SOURCE_DIR}/src
      -gencode=arch=compute_90a,code=sm_90a --resource-usage -cubin -o /dev/null ${CMAKE_SOURCE_DIR}/${src})
endforeach()
add_custom_target(oss4_cuda_resources ${OSS4_CUDA_RESOURCE_CMDS} COMMENT "CUDA resource usage (sm_90a)" VERBATIM)
