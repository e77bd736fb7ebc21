# Installs the build in BUILD_DIR into a scratch prefix, then configures,
# builds and runs the consumer project against it.
set(prefix ${BUILD_DIR}/install-check)
file(REMOVE_RECURSE ${prefix})
function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE status OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT status EQUAL 0)
    message(FATAL_ERROR "failed: ${ARGN}\n${out}")
  endif()
endfunction()
run(${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${prefix})
run(${CMAKE_COMMAND} -S ${SOURCE_DIR} -B ${prefix}/consumer -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_BUILD_TYPE=Release
    -DCMAKE_CXX_COMPILER=${CXX_COMPILER} -DCMAKE_CXX_FLAGS=${CXX_FLAGS})
run(${CMAKE_COMMAND} --build ${prefix}/consumer)
run(${prefix}/consumer/consumer)
if(EXISTS ${prefix}/consumer/consumer_distributed)
  run(${prefix}/consumer/consumer_distributed)
endif()
message(STATUS "find_package(tapegrad) from ${prefix}: consumer built and ran")
