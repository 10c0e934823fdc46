# Every build option of the project, with its default, in one place.
option(SOUNDSPRING_PYTHON "Build the pybind11 extension module soundspring._core" ON)
option(SOUNDSPRING_CPP_TESTS "Build the framework-free C++ tests of csrc/core (ctest)" OFF)
option(SOUNDSPRING_SANITIZE "Build core and C++ tests with AddressSanitizer + UBSan" OFF)
option(SOUNDSPRING_WERROR "Treat compiler warnings as errors" OFF)
option(SOUNDSPRING_CUDA "Build the CUDA SpringLM engine (csrc/cuda/) when nvcc is found" ON)

# SKBUILD is set by scikit-build-core: a pip build always builds the Python module.
if(SKBUILD)
  set(SOUNDSPRING_PYTHON ON)
endif()
