"""The deployer's command line: `python -m deployer <command> [CLUSTER]` (the Makefile calls it)."""

import argparse
import os
import sys

from . import chart, facts, image, values


def cmd_validate(args):
    names = [args.cluster] if args.cluster else facts.cluster_names()
    for name in names:
        cluster = facts.load(name)
        values.validate_values(values.merged_values(cluster), facts.cluster_file(name))
        print(f"ok: {name}")


def cmd_values(args):
    cluster = facts.load(_required_cluster(args))
    merged = values.validate_values(values.merged_values(cluster), facts.cluster_file(cluster["name"]))
    _print_to_pipe(values.dump_yaml(merged))


def cmd_template(args):
    cluster = facts.load(_required_cluster(args))
    merged = values.validate_values(values.merged_values(cluster), facts.cluster_file(cluster["name"]))
    chart.build_dependencies()
    _print_to_pipe(chart.template(cluster, merged))


def _print_to_pipe(text):
    """Print long output; a reader that stops early (`| head`) is not an error."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def cmd_image(args):
    if args.action == "requirements":
        print("\n".join(image.pip_requirements()))
    elif args.action == "tag":
        tag = image.content_tag()
        if args.write:
            image.write_values_tag(tag)
        print(tag)
    elif args.action == "build":
        print(f"built {image.build()}")
    elif args.action == "push":
        for pushed in image.push([args.cluster] if args.cluster else None):
            print(f"pushed {pushed}")


def cmd_cluster(args):
    from . import deploy

    raise SystemExit(deploy.cli(args.command, args.cluster))


def cmd_secrets(args):
    from . import secrets

    facts.cluster_file(args.cluster)
    print(f"created {secrets.init(args.cluster, age_only=args.age_only)}: set the GitHub OAuth app's client id "
          "and secret with `sops` before the first deploy")


def cmd_kind(args):
    from . import kind

    raise SystemExit(kind.cli(args.action))


def _required_cluster(args):
    if not args.cluster:
        raise facts.ConfigError("Makefile", "CLUSTER", f"name a cluster: CLUSTER=<one of {', '.join(facts.cluster_names())}>")
    return args.cluster


def main(argv=None):
    parser = argparse.ArgumentParser(prog="deployer", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, func in (("validate", cmd_validate), ("values", cmd_values), ("template", cmd_template)):
        p = sub.add_parser(name)
        p.add_argument("cluster", nargs="?")
        p.set_defaults(func=func)
    p = sub.add_parser("image")
    p.add_argument("action", choices=["requirements", "tag", "build", "push"])
    p.add_argument("--write", action="store_true", help="tag: also set it in helm/pangeo-cloud/values.yaml")
    p.add_argument("--cluster", help="push: only to this cluster's registry (default: every deployed cluster's)")
    p.set_defaults(func=cmd_image)
    for name in ("deploy", "diff", "health"):
        p = sub.add_parser(name)
        p.add_argument("cluster", nargs="?")
        p.set_defaults(func=cmd_cluster)
    p = sub.add_parser("secrets")
    p.add_argument("action", choices=["init"])
    p.add_argument("cluster")
    p.add_argument("--age-only", action="store_true", help="encrypt to the ops age key only (no cloud login)")
    p.set_defaults(func=cmd_secrets)
    p = sub.add_parser("kind")
    p.add_argument("action", choices=["up", "down"])
    p.set_defaults(func=cmd_kind)
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except (facts.ConfigError, image.ImageError, chart.HelmError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
