"""The mutator owns the concrete syntax tree: parse, find sites, apply edits by splicing
literals at CST-derived spans (every other byte kept), validate on values, hash variants
canonically, diff and ground untrusted text. It never writes a user's file and never
imports torch."""

from deepphoenix.mutator._bindings import Binding, collect_bindings
from deepphoenix.mutator._bundle import (
    BUNDLE_HEADER,
    Bundle,
    BundleMutation,
    BundleVariant,
    bundle_diff,
    bundle_hash,
    bundle_text,
    is_bundle_text,
    parse_bundle,
    parse_candidate,
    split_bundle,
)
from deepphoenix.mutator._diff import Diff, diff_programs, diff_text, unified_diff
from deepphoenix.mutator._ground import (
    TargetFormat,
    format_edit_script,
    ground,
    parse_edit_script,
)
from deepphoenix.mutator._infer import GROUPS, Inference, Skipped, infer, infer_grammar, infer_spec
from deepphoenix.mutator._literal import parse_value_text, render_value
from deepphoenix.mutator._program import (
    HASH_LENGTH,
    Edit,
    Mutation,
    Program,
    Site,
    Variant,
    canonical_hash,
    find_sites,
    parse_program,
    read_program,
)
from deepphoenix.mutator._resolve import resolve_grammar
from deepphoenix.mutator._scan import Annotation, Source, Suite
from deepphoenix.mutator._source import parse_module, read_source
from deepphoenix.mutator._structure import Located, Locator, register_placement

__all__ = [
    "BUNDLE_HEADER",
    "GROUPS",
    "HASH_LENGTH",
    "Annotation",
    "Binding",
    "Bundle",
    "BundleMutation",
    "BundleVariant",
    "Diff",
    "Edit",
    "Inference",
    "Located",
    "Locator",
    "Mutation",
    "Program",
    "Site",
    "Skipped",
    "Source",
    "Suite",
    "TargetFormat",
    "Variant",
    "bundle_diff",
    "bundle_hash",
    "bundle_text",
    "canonical_hash",
    "collect_bindings",
    "diff_programs",
    "diff_text",
    "find_sites",
    "format_edit_script",
    "ground",
    "infer",
    "infer_grammar",
    "infer_spec",
    "is_bundle_text",
    "parse_bundle",
    "parse_candidate",
    "parse_edit_script",
    "parse_module",
    "parse_program",
    "parse_value_text",
    "read_program",
    "read_source",
    "register_placement",
    "render_value",
    "resolve_grammar",
    "split_bundle",
    "unified_diff",
]
