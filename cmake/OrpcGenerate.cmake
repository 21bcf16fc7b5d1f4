# OrpcGenerate.cmake — orpc_generate(): .proto files to C with protoc-c and
# protoc-gen-orpc.
#
#   orpc_generate(<target>
#                 PROTOS <file.proto>...
#                 [IMPORT_DIRS <dir>...]
#                 [PROTO_ROOT <dir>]      # default: CMAKE_CURRENT_SOURCE_DIR
#                 [OUT_DIR <dir>])        # default: <binary dir>/orpc_gen
#
# For every proto it runs, once, protoc with both plugins and writes
# <name>.pb-c.{h,c} and <name>.orpc.{h,c} under OUT_DIR, keeping the proto's
# path relative to the import directory it was found in.  The .c files are
# added to <target>'s sources and OUT_DIR to its include path (PUBLIC).  Each
# command lists the proto and, through protoc's dependency file, everything
# it imports, so editing any of them regenerates.
#
# Import path, in order: PROTO_ROOT, IMPORT_DIRS, then orpc's own (orpc/
# options.proto and the Debian packages' google/ and grpc/ protos).  The
# protos liborpc already carries compiled (ORPC_PROVIDED_PROTOS) are never
# generated again: import them freely, but do not list them in PROTOS.
#
# This file is used both inside the orpc build and from an installed orpc
# (find_package(orpc)); it finds the plugin as the target protoc-gen-orpc or
# orpc::protoc-gen-orpc.

set(ORPC_PROVIDED_PROTOS
    google/protobuf/any.proto
    google/protobuf/descriptor.proto
    google/protobuf/duration.proto
    google/protobuf/empty.proto
    google/protobuf/field_mask.proto
    google/protobuf/struct.proto
    google/protobuf/timestamp.proto
    google/protobuf/wrappers.proto
    google/api/http.proto
    google/api/annotations.proto
    google/rpc/status.proto
    grpc/health/v1/health.proto
    grpc/reflection/v1/reflection.proto
    grpc/reflection/v1alpha/reflection.proto
    orpc/options.proto)

# _orpc_generate_one(<rel> <abs> <out_dir> <plugin> <mode> <import dirs...>)
# mode: BOTH (protoc-c and orpc) or C_ONLY.  Sets _orpc_outputs in the
# caller's scope.
function(_orpc_generate_one rel abs out_dir plugin_target mode)
  set(plugin $<TARGET_FILE:${plugin_target}>)
  set(dirs ${ARGN})
  string(REGEX REPLACE "\\.proto$" "" stem "${rel}")
  set(outs ${out_dir}/${stem}.pb-c.c ${out_dir}/${stem}.pb-c.h)
  set(args --plugin=protoc-gen-c=${ORPC_PROTOC_GEN_C} --c_out=${out_dir})
  set(deps ${abs})
  if(mode STREQUAL "BOTH")
    list(APPEND outs ${out_dir}/${stem}.orpc.c ${out_dir}/${stem}.orpc.h)
    list(APPEND args --plugin=protoc-gen-orpc=${plugin} --orpc_out=${out_dir})
    list(APPEND deps ${plugin_target})
  endif()
  set(incs)
  foreach(d IN LISTS dirs)
    list(APPEND incs -I${d})
  endforeach()
  string(MAKE_C_IDENTIFIER "${stem}" depname)
  set(depfile ${out_dir}/.deps/${depname}.d)
  add_custom_command(
    OUTPUT ${outs}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${out_dir}/.deps
    COMMAND ${ORPC_PROTOC} ${incs} ${args} --dependency_out=${depfile} ${rel}
    DEPENDS ${deps}
    DEPFILE ${depfile}
    COMMENT "protoc ${rel}"
    VERBATIM)
  set(_orpc_outputs ${outs} PARENT_SCOPE)
endfunction()

# Resolves a PROTOS entry against the import dirs: sets _rel and _abs.
function(_orpc_resolve proto)
  set(dirs ${ARGN})
  if(IS_ABSOLUTE "${proto}")
    foreach(d IN LISTS dirs)
      file(RELATIVE_PATH r "${d}" "${proto}")
      if(NOT r MATCHES "^\\.\\./")
        set(_rel "${r}" PARENT_SCOPE)
        set(_abs "${proto}" PARENT_SCOPE)
        return()
      endif()
    endforeach()
    message(FATAL_ERROR "orpc_generate: ${proto} is under no import directory")
  endif()
  foreach(d IN LISTS dirs)
    if(EXISTS "${d}/${proto}")
      set(_rel "${proto}" PARENT_SCOPE)
      set(_abs "${d}/${proto}" PARENT_SCOPE)
      return()
    endif()
  endforeach()
  message(FATAL_ERROR "orpc_generate: ${proto} not found in: ${dirs}")
endfunction()

function(orpc_generate target)
  cmake_parse_arguments(G "_C_ONLY;_PROVIDED" "OUT_DIR;PROTO_ROOT"
                        "PROTOS;IMPORT_DIRS" ${ARGN})
  if(NOT G_PROTOS)
    message(FATAL_ERROR "orpc_generate(${target}): no PROTOS given")
  endif()
  if(NOT G_PROTO_ROOT)
    set(G_PROTO_ROOT ${CMAKE_CURRENT_SOURCE_DIR})
  endif()
  if(NOT G_OUT_DIR)
    set(G_OUT_DIR ${CMAKE_CURRENT_BINARY_DIR}/orpc_gen)
  endif()
  if(TARGET protoc-gen-orpc)
    set(plugin protoc-gen-orpc)
  elseif(TARGET orpc::protoc-gen-orpc)
    set(plugin orpc::protoc-gen-orpc)
  else()
    message(FATAL_ERROR "orpc_generate: protoc-gen-orpc not found")
  endif()
  set(mode BOTH)
  if(G__C_ONLY)
    set(mode C_ONLY)
  endif()
  get_filename_component(root "${G_PROTO_ROOT}" ABSOLUTE)
  set(dirs ${root} ${G_IMPORT_DIRS} ${ORPC_PROTO_IMPORT_DIRS})
  list(REMOVE_DUPLICATES dirs)
  set(srcs)
  foreach(p IN LISTS G_PROTOS)
    _orpc_resolve("${p}" ${dirs})
    if(NOT G__PROVIDED AND _rel IN_LIST ORPC_PROVIDED_PROTOS)
      message(FATAL_ERROR "orpc_generate: ${_rel} is compiled into liborpc; "
                          "import it, do not list it in PROTOS")
    endif()
    _orpc_generate_one("${_rel}" "${_abs}" "${G_OUT_DIR}" "${plugin}" ${mode}
                       ${dirs})
    list(APPEND srcs ${_orpc_outputs})
  endforeach()
  target_sources(${target} PRIVATE ${srcs})
  target_include_directories(${target} PUBLIC $<BUILD_INTERFACE:${G_OUT_DIR}>)
endfunction()
