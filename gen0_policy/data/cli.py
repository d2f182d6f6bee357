"""``gen0 data``: build LeRobot v3 datasets from recorded bags, read them back, repair crashed bags."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from gen0_policy.cli_args import size_arg


def _build(args: argparse.Namespace) -> int:
    from gen0_policy.data.bags import BuildConfig, find_bags
    from gen0_policy.data.build import build_dataset

    config = BuildConfig(
        fps=args.fps,
        image_size=args.image_size,
        embodiment=args.embodiment,
        joint_states_topic=args.joint_states_topic,
        camera_topics=tuple(args.camera_topic) if args.camera_topic else None,
        command_topics=tuple(args.command_topic) if args.command_topic else None,
    )
    bags = find_bags(args.bags)
    print(f"building {args.out} from {len(bags)} bags at {args.fps:g} Hz")
    report = build_dataset(
        bags, args.out, config, only_success=args.only_success, on_episode=lambda q: print(q.summary_line())
    )
    fps = report.frames / report.seconds if report.seconds else 0.0
    print(
        f"wrote {len(report.written)} episodes ({report.frames} frames, {fps:.0f} frames/s) to {args.out}; "
        f"{len(report.filtered)} failed episodes left out, {len(report.rejected)} bags rejected; "
        f"quality report: {Path(args.out) / 'quality.json'}"
    )
    return 1 if report.rejected else 0


def _summary(root: Path, decode: bool) -> dict:
    from gen0_policy.data.lerobot import LeRobotDataset

    ds = LeRobotDataset(root)
    summary = {
        "root": str(root),
        "robot_type": ds.robot_type,
        "fps": ds.fps,
        "episodes": ds.num_episodes,
        "frames": ds.num_frames,
        "tasks": ds.tasks,
        "cameras": list(ds.camera_sizes),
        "joints": ds.joint_names,
    }
    if decode:
        episodes = ds.episodes()
        summary["successes"] = sum(e.success for e in episodes)
        summary["per_episode"] = [
            {"index": i, "steps": len(e), "success": e.success, "task": e.task, "instruction": e.instruction}
            for i, e in enumerate(episodes)
        ]
    return summary


def _print(summary: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(summary, indent=2))
        return
    for key, value in summary.items():
        if key != "per_episode":
            print(f"{key:>11}: {value}")
    for row in summary.get("per_episode", []):
        print(f"  episode {row['index']:>4}: {row['steps']:>5} steps, success={row['success']}, {row['instruction']!r}")


def _import(args: argparse.Namespace) -> int:
    _print(_summary(args.dir, decode=True), args.json)
    return 0


def _info(args: argparse.Namespace) -> int:
    _print(_summary(args.dir, decode=False), args.json)
    return 0


def _repair(args: argparse.Namespace) -> int:
    from gen0_policy.data.recording import repair_bag

    for bag in args.bags:
        out, count = repair_bag(bag)
        print(f"{bag}: {count} messages recovered into {out}")
    return 0


def _view(args: argparse.Namespace) -> int:
    from gen0_policy.embodiment import load_embodiment
    from gen0_policy.errors import DatasetError, EmbodimentError
    from gen0_policy.viewer import open_viewer, view_episode

    path = Path(args.path)
    names: list[str] = []
    if (path / "meta" / "info.json").is_file():
        from gen0_policy.data.lerobot import STATE, LeRobotDataset

        dataset = LeRobotDataset(path)
        episode = dataset.episode(args.episode)
        names = list(dataset.info.get("features", {}).get(STATE, {}).get("names") or [])
    elif (path / "metadata.yaml").is_file() or path.suffix == ".mcap":
        from gen0_policy.data.bags import BuildConfig, read_bag

        episode, _ = read_bag(path, BuildConfig(fps=args.fps))
    else:
        raise DatasetError(f"{path} is neither a LeRobot v3 dataset (meta/info.json) nor a rosbag2 bag (metadata.yaml)")
    if len(names) != episode.states.shape[1]:
        try:
            names = list(load_embodiment(episode.embodiment).joint_names)
        except EmbodimentError:  # a robot we do not describe: number the joints
            names = [f"joint{i}" for i in range(episode.states.shape[1])]
    suffix = ".rrd" if args.backend == "rerun" else ".mcap"
    if not (args.save or args.spawn or args.connect):
        args.save = path.with_name(f"{path.name}_episode{args.episode}{suffix}")
    viewer = open_viewer(args.backend, f"gen0 {path.name}", args.save, args.spawn, args.connect or "")
    try:
        steps = view_episode(viewer, episode, names)
    finally:
        viewer.close()
    where = f" into {args.save}" if args.save else ""
    how = "rerun FILE" if args.backend == "rerun" else "Foxglove: Open local file"
    print(f"logged {steps} steps of {episode.embodiment} '{episode.instruction}'{where} (open with: {how})")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    data = subparsers.add_parser("data", help="build, inspect and repair datasets and bags")
    sub = data.add_subparsers(dest="data_command", metavar="SUBCOMMAND")

    build = sub.add_parser("build", help="turn recorded bags into a LeRobot v3 dataset")
    build.add_argument("bags", nargs="+", type=Path, help="bag folders, or folders of bag folders")
    build.add_argument("--out", type=Path, required=True, help="new dataset folder")
    build.add_argument("--fps", type=float, default=20.0, help="control rate of the dataset, Hz (default 20)")
    build.add_argument("--embodiment", help="embodiment name (default: the one in each bag's EpisodeInfo)")
    build.add_argument("--only-success", action="store_true", help="leave out episodes that failed")
    build.add_argument("--image-size", type=size_arg, help="store frames resized to WxH (default: as recorded)")
    build.add_argument("--joint-states-topic", default="/joint_states", help="measured joints topic")
    build.add_argument("--camera-topic", action="append", help="camera topic (repeat; default: every Image topic)")
    build.add_argument(
        "--command-topic",
        action="append",
        help="command topic (repeat; default: every JointTrajectory/Float64MultiArray topic)",
    )
    build.set_defaults(func=_build)

    imp = sub.add_parser("import", help="read a LeRobot v3 dataset back (decodes every episode) and summarize it")
    imp.add_argument("dir", type=Path, help="dataset folder (with meta/info.json)")
    imp.add_argument("--json", action="store_true", help="print JSON")
    imp.set_defaults(func=_import)

    info = sub.add_parser("info", help="summarize a LeRobot v3 dataset from its metadata")
    info.add_argument("dir", type=Path, help="dataset folder (with meta/info.json)")
    info.add_argument("--json", action="store_true", help="print JSON")
    info.set_defaults(func=_info)

    repair = sub.add_parser("repair", help="rebuild bags whose recorder was killed, from their flushed chunks")
    repair.add_argument("bags", nargs="+", type=Path, help="bag folders (each gets a <bag>_repaired copy)")
    repair.set_defaults(func=_repair)

    view = sub.add_parser("view", help="play a recorded episode (bag) or a dataset's episode in Rerun or Foxglove")
    view.add_argument("path", type=Path, help="a LeRobot v3 dataset folder or a rosbag2 bag folder")
    view.add_argument("--episode", type=int, default=0, help="episode index in a dataset (default 0)")
    view.add_argument("--fps", type=float, default=20.0, help="resampling rate for a bag, Hz (default 20)")
    view.add_argument("--backend", choices=("rerun", "foxglove"), default="rerun", help="viewer (default rerun)")
    view.add_argument("--save", type=Path, help="write a recording (.rrd; foxglove: .mcap); default without a viewer")
    view.add_argument(
        "--spawn", action="store_true", help="rerun: open its viewer; foxglove: serve ws://127.0.0.1:8765"
    )
    view.add_argument("--connect", default="", help="rerun: a running viewer's gRPC URL; foxglove: HOST:PORT to serve")
    view.set_defaults(func=_view)

    data.set_defaults(func=lambda args: data.print_help() or 0)
