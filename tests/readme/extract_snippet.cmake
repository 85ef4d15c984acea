# Make the first C block after a README heading into a function a test can
# call, so the README's code is compiled and run and cannot drift from the
# API. The block is written as a body (as tests/api/snippets.cmake expects
# of every README block): it uses two open replicas, till and server, and
# leaves its outcome in an int rc. Its #include lines go to the top. Fails,
# and with it the build, if the heading or block is missing.
# Usage: cmake -DREADME=... -DHEADING=... -DFUNC=... -DOUT=... -P this
file(STRINGS "${README}" _lines)
set(_state before) # before the heading, after it, in the block, done
set(_includes "#include <converge.h>\n")
set(_body "")
foreach(l IN LISTS _lines)
  if(_state STREQUAL "before" AND l STREQUAL "${HEADING}")
    set(_state after)
  elseif(_state STREQUAL "after" AND l MATCHES "^```c$")
    set(_state block)
  elseif(_state STREQUAL "block" AND l MATCHES "^```$")
    set(_state done)
  elseif(_state STREQUAL "block")
    if(l MATCHES "^#include")
      string(APPEND _includes "${l}\n")
    else()
      string(APPEND _body "    ${l}\n")
    endif()
  endif()
endforeach()
if(NOT _state STREQUAL "done")
  message(FATAL_ERROR "${README}: no whole C block after '${HEADING}'")
endif()
file(WRITE "${OUT}"
  "/* Generated from README.md, section '${HEADING}'. Do not edit. */\n"
  "${_includes}\n"
  "int ${FUNC}(cvg_replica *till, cvg_replica *server);\n\n"
  "int\n${FUNC}(cvg_replica *till, cvg_replica *server)\n{\n"
  "${_body}    return rc;\n}\n")
