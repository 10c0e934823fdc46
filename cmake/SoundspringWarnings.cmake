# soundspring_set_warnings(target): the project's warning set; -Werror with SOUNDSPRING_WERROR.
# Floating point stays IEEE-exact everywhere (no fast-math, no FMA contraction): the CDF
# quantiser's bit-exactness depends on it. -fno-trapping-math only lets the compiler
# vectorise selects; no trap is ever enabled, so results are unchanged.
function(soundspring_set_warnings target)
  if(CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
    target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wshadow -Wconversion
                                             -Wno-sign-conversion -fno-fast-math -ffp-contract=off
                                             -fno-trapping-math)
    if(SOUNDSPRING_WERROR)
      target_compile_options(${target} PRIVATE -Werror)
    endif()
    if(SOUNDSPRING_SANITIZE)
      target_compile_options(${target} PUBLIC -fsanitize=address,undefined -fno-omit-frame-pointer)
      target_link_options(${target} PUBLIC -fsanitize=address,undefined)
    endif()
  endif()
endfunction()
