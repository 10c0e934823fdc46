# soundspring_set_warnings(target): the project's warning set; -Werror with SOUNDSPRING_WERROR.
# Floating point stays strict everywhere: the CDF quantiser's bit-exactness depends on it.
function(soundspring_set_warnings target)
  if(CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
    target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wshadow -Wconversion
                                             -Wno-sign-conversion -fno-fast-math -ffp-contract=off)
    if(SOUNDSPRING_WERROR)
      target_compile_options(${target} PRIVATE -Werror)
    endif()
    if(SOUNDSPRING_SANITIZE)
      target_compile_options(${target} PUBLIC -fsanitize=address,undefined -fno-omit-frame-pointer)
      target_link_options(${target} PUBLIC -fsanitize=address,undefined)
    endif()
  endif()
endfunction()
