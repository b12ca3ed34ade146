# Installs ferry into a scratch prefix, then builds a tiny consumer against it twice:
# with find_package(ferry) and with pkg-config. Fails the test on any error.
file(REMOVE_RECURSE ${BIN})
function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "command failed (${rc}): ${ARGN}\n${out}")
  endif()
endfunction()
run(${CMAKE_COMMAND} -S ${SRC} -B ${BIN}/build -DFERRY_TESTS=OFF -DCMAKE_BUILD_TYPE=Release
    -DCMAKE_INSTALL_PREFIX=${BIN}/prefix)
run(${CMAKE_COMMAND} --build ${BIN}/build -j2)
run(${CMAKE_COMMAND} --install ${BIN}/build)
run(${CMAKE_COMMAND} -S ${SRC}/tests/consumer -B ${BIN}/consumer -DCMAKE_PREFIX_PATH=${BIN}/prefix)
run(${CMAKE_COMMAND} --build ${BIN}/consumer)
run(${BIN}/consumer/consumer)
# pkg-config route, linking the shared library
file(GLOB pcdir ${BIN}/prefix/lib*/pkgconfig)
set(ENV{PKG_CONFIG_PATH} ${pcdir})
execute_process(COMMAND pkg-config --cflags --libs ferry OUTPUT_VARIABLE flags RESULT_VARIABLE rc
                OUTPUT_STRIP_TRAILING_WHITESPACE)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "pkg-config cannot find ferry.pc in ${pcdir}")
endif()
separate_arguments(flags)
run(cc ${SRC}/tests/consumer/consumer.c ${flags} -o ${BIN}/consumer-pc)
file(GLOB libdir ${BIN}/prefix/lib*)
set(ENV{LD_LIBRARY_PATH} ${libdir})
run(${BIN}/consumer-pc)
