"""Installable artifacts: one archive holding every kheap object.

Bazel keeps one archive (or loose objects) per cc_library, so neither a
plain cc_library nor a shared link gives an archive an outside program can
link alone. kheap_merged_archive gathers the position-independent objects of
every library of this workspace that its deps reach, archives them as one
file, and records the link flags those libraries need from the system.

Its CcInfo offers the merged archive as alwayslink, so a linkshared
cc_binary on top of it exports every kheap symbol, not only the ones some
object happened to reference.
"""

load("@bazel_tools//tools/cpp:toolchain_utils.bzl", "find_cpp_toolchain")

def _workspace_objects(library):
    if library.pic_objects:
        return library.pic_objects
    return library.objects

def _kheap_merged_archive_impl(ctx):
    cc_toolchain = find_cpp_toolchain(ctx)
    feature_configuration = cc_common.configure_features(
        ctx = ctx,
        cc_toolchain = cc_toolchain,
        requested_features = ctx.features,
        unsupported_features = ctx.disabled_features,
    )

    objects = []
    link_flags = []
    for dep in ctx.attr.deps:
        for linker_input in dep[CcInfo].linking_context.linker_inputs.to_list():
            for flag in linker_input.user_link_flags:
                if flag not in link_flags:
                    link_flags.append(flag)
            if linker_input.owner.workspace_name:
                continue
            for library in linker_input.libraries:
                for obj in _workspace_objects(library):
                    if obj not in objects:
                        objects.append(obj)
    if not objects:
        fail("%s: the deps produced no objects to archive" % ctx.label)

    archive = ctx.actions.declare_file(ctx.attr.out)
    args = ctx.actions.args()
    args.add("qcD")
    args.add(archive)
    args.add_all(objects)
    ctx.actions.run(
        executable = cc_toolchain.ar_executable,
        arguments = [args],
        inputs = depset(objects, transitive = [cc_toolchain.all_files]),
        outputs = [archive],
        mnemonic = "KheapMergedArchive",
        progress_message = "Archiving %d kheap objects into %s" % (len(objects), archive.short_path),
    )

    flags_file = ctx.actions.declare_file(ctx.attr.out + ".linkflags")
    ctx.actions.write(flags_file, "".join([flag + "\n" for flag in link_flags]))

    library_to_link = cc_common.create_library_to_link(
        actions = ctx.actions,
        feature_configuration = feature_configuration,
        cc_toolchain = cc_toolchain,
        pic_static_library = archive,
        alwayslink = True,
    )
    linker_input = cc_common.create_linker_input(
        owner = ctx.label,
        libraries = depset([library_to_link]),
        user_link_flags = depset(link_flags),
    )
    return [
        DefaultInfo(files = depset([archive, flags_file])),
        CcInfo(
            compilation_context = cc_common.merge_cc_infos(
                cc_infos = [dep[CcInfo] for dep in ctx.attr.deps],
            ).compilation_context,
            linking_context = cc_common.create_linking_context(
                linker_inputs = depset([linker_input]),
            ),
        ),
    ]

kheap_merged_archive = rule(
    implementation = _kheap_merged_archive_impl,
    attrs = {
        "deps": attr.label_list(providers = [CcInfo]),
        "out": attr.string(mandatory = True),
        "_cc_toolchain": attr.label(default = "@bazel_tools//tools/cpp:current_cc_toolchain"),
    },
    fragments = ["cpp"],
    toolchains = ["@bazel_tools//tools/cpp:toolchain_type"],
    incompatible_use_toolchain_transition = True,
)
