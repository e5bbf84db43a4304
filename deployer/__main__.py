"""The deployer's command line: `python -m deployer <command> [CLUSTER]` (the Makefile calls it)."""

import argparse
import sys

import yaml

from . import facts, image, values


def cmd_validate(args):
    names = [args.cluster] if args.cluster else facts.cluster_names()
    for name in names:
        cluster = facts.load(name)
        values.validate_values(values.merged_values(cluster), facts.cluster_file(name))
        print(f"ok: {name}")


def cmd_values(args):
    cluster = facts.load(_required_cluster(args))
    merged = values.validate_values(values.merged_values(cluster), facts.cluster_file(cluster["name"]))
    yaml.safe_dump(merged, sys.stdout, sort_keys=False)


def cmd_image(args):
    if args.action == "requirements":
        print("\n".join(image.pip_requirements()))


def _required_cluster(args):
    if not args.cluster:
        raise facts.ConfigError("Makefile", "CLUSTER", f"name a cluster: CLUSTER=<one of {', '.join(facts.cluster_names())}>")
    return args.cluster


def main(argv=None):
    parser = argparse.ArgumentParser(prog="deployer", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, func in (("validate", cmd_validate), ("values", cmd_values)):
        p = sub.add_parser(name)
        p.add_argument("cluster", nargs="?")
        p.set_defaults(func=func)
    p = sub.add_parser("image")
    p.add_argument("action", choices=["requirements"])
    p.set_defaults(func=cmd_image)
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except facts.ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
