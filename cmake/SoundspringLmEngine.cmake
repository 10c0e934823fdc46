# Build rules of the SpringLM engine (csrc/core/lm_engine*, lm_kernels*).
#
# soundspring_lm_engine_isa(target): on x86-64, compiles lm_kernels_avx2.cc with -mavx2 -mf16c
# and lm_kernels_avx512.cc with -mavx512f (each only if the compiler takes the flag) and
# tells lm_kernels.cc which of them exist; the CPU is checked at run time before either
# runs. No -mfma anywhere: with -ffp-contract=off (SoundspringWarnings.cmake) a product and
# the sum after it stay two correctly rounded operations on every ISA level.
include(CheckCXXCompilerFlag)

function(soundspring_lm_engine_isa target)
  if(NOT CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64)$")
    return()
  endif()
  check_cxx_compiler_flag("-mavx2 -mf16c" SOUNDSPRING_CXX_HAS_MAVX2)
  check_cxx_compiler_flag(-mavx512f SOUNDSPRING_CXX_HAS_MAVX512F)
  set(dir ${CMAKE_CURRENT_SOURCE_DIR}/core)
  if(SOUNDSPRING_CXX_HAS_MAVX2)
    set_source_files_properties(${dir}/lm_kernels_avx2.cc PROPERTIES COMPILE_OPTIONS "-mavx2;-mf16c")
    set_property(SOURCE ${dir}/lm_kernels.cc APPEND PROPERTY COMPILE_DEFINITIONS
                 SOUNDSPRING_LM_HAVE_AVX2=1)
  endif()
  if(SOUNDSPRING_CXX_HAS_MAVX512F)
    set_source_files_properties(${dir}/lm_kernels_avx512.cc PROPERTIES COMPILE_OPTIONS -mavx512f)
    set_property(SOURCE ${dir}/lm_kernels.cc APPEND PROPERTY COMPILE_DEFINITIONS
                 SOUNDSPRING_LM_HAVE_AVX512=1)
  endif()
endfunction()

# soundspring_lm_engine_cuda(): with SOUNDSPRING_CUDA and a working nvcc (check_language
# compiles a test program), the static library soundspring_lm_cuda (csrc/cuda/, the engine
# on a device, sharing core/det_math.h and core/lm_ops.h with the CPU) and its check tool
# check_lm_engine_cuda (registered with ctest under SOUNDSPRING_CPP_TESTS; it exits 77,
# "skipped", without a device). Device code never fuses: --fmad=false, and det_math.h uses
# the __f*_rn intrinsics. A macro, because enable_language must run at file scope.
# CMAKE_CUDA_ARCHITECTURES defaults to 80;90 (A100, H100/H200 class); set it to build for
# others. Not with SOUNDSPRING_SANITIZE (nvcc takes no -fsanitize).
macro(soundspring_lm_engine_cuda)
  if(SOUNDSPRING_CUDA AND SOUNDSPRING_SANITIZE)
    message(STATUS "SoundSpring: the CUDA SpringLM engine is not built with SOUNDSPRING_SANITIZE")
  elseif(SOUNDSPRING_CUDA)
    include(CheckLanguage)
    check_language(CUDA)
    if(CMAKE_CUDA_COMPILER)
      if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
        set(CMAKE_CUDA_ARCHITECTURES 80 90)
      endif()
      enable_language(CUDA)
      find_package(CUDAToolkit REQUIRED)
      add_library(soundspring_lm_cuda STATIC ${CMAKE_CURRENT_SOURCE_DIR}/cuda/lm_engine_cuda.cu)
      target_include_directories(soundspring_lm_cuda PUBLIC ${CMAKE_CURRENT_SOURCE_DIR})
      target_link_libraries(soundspring_lm_cuda PUBLIC soundspring_core CUDA::cudart_static)
      set_target_properties(soundspring_lm_cuda PROPERTIES CUDA_STANDARD 17 CUDA_STANDARD_REQUIRED ON
                                                           POSITION_INDEPENDENT_CODE ON)
      target_compile_options(soundspring_lm_cuda PRIVATE
          $<$<COMPILE_LANGUAGE:CUDA>:--fmad=false -Xcompiler=-ffp-contract=off,-fno-fast-math,-Wall,-Wextra>)
      if(SOUNDSPRING_WERROR)
        target_compile_options(soundspring_lm_cuda PRIVATE
            $<$<COMPILE_LANGUAGE:CUDA>:-Werror=all-warnings -Xcompiler=-Werror>)
      endif()
      add_executable(check_lm_engine_cuda ${CMAKE_CURRENT_SOURCE_DIR}/cuda/check_lm_engine_cuda.cc)
      target_link_libraries(check_lm_engine_cuda PRIVATE soundspring_lm_cuda)
      soundspring_set_warnings(check_lm_engine_cuda)
      if(SOUNDSPRING_CPP_TESTS)
        enable_testing()  # this directory's tests; the top level enables its own later
        add_test(NAME check_lm_engine_cuda COMMAND check_lm_engine_cuda)
        set_tests_properties(check_lm_engine_cuda PROPERTIES SKIP_RETURN_CODE 77)
      endif()
      message(STATUS "SoundSpring: CUDA SpringLM engine enabled (${CMAKE_CUDA_COMPILER})")
    else()
      message(STATUS "SoundSpring: no CUDA compiler; the CUDA SpringLM engine is not built")
    endif()
  endif()
endmacro()
