"""Reading and writing rosbag2 bags without rosbag2 or rclpy, on the `rosbags` library.

What `syncvp-bag` needs and plain pytest covers: the type store (ROS 2 Jazzy types plus our
RGBDPrediction, registered from its .msg text), reading bags with one error type that names the bag, and
writing bags with QoS metadata. Payloads stay raw CDR bytes, which rclpy publishes and receives as they are.
"""
from __future__ import annotations

import functools
import os
import pathlib
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import apsw
from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.rosbag2.errors import ReaderError, WriterError
from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

from syncvp_ros.processes import share_file

PREDICTION_TYPE = "syncvp_ros/msg/RGBDPrediction"
# rosbag2 metadata version of Jazzy and Kilted (QoS profiles as a YAML list).
BAG_VERSION = 9
STORAGES = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}

# rosbag2's and rmw's "infinite" duration, as written for unset deadline / lifespan / lease.
_INFINITE = QosTime(sec=9223372036, nsec=854775807)


class BagError(Exception):
    """A bag cannot be read or written; the message names the bag and what is wrong."""


@dataclass(frozen=True)
class BagMessage:
    topic: str
    msgtype: str
    timestamp: int  # ns, the bag's log time
    rawdata: bytes


@dataclass(frozen=True)
class TopicInfo:
    name: str
    msgtype: str
    count: int
    qos: tuple[Qos, ...]


@dataclass(frozen=True)
class BagInfo:
    path: pathlib.Path
    storage: str
    start_ns: int  # first message
    end_ns: int  # last message
    topics: dict[str, TopicInfo]

    @property
    def duration_s(self) -> float:
        return (self.end_ns - self.start_ns) / 1e9

    @property
    def message_count(self) -> int:
        return sum(t.count for t in self.topics.values())


def _prediction_msg_text() -> str:
    try:
        return share_file("msg", "RGBDPrediction.msg").read_text()
    except FileNotFoundError as err:
        raise BagError(f"{err}: install syncvp_ros or run from its source tree") from None


@functools.cache
def typestore() -> Typestore:
    """Jazzy message types plus syncvp_ros/msg/RGBDPrediction."""
    store = get_typestore(Stores.ROS2_JAZZY)
    store.register(get_types_from_msg(_prediction_msg_text(), PREDICTION_TYPE))
    return store


def qos(reliable: bool = True, depth: int = 10) -> Qos:
    """A volatile keep-last QoS profile as rosbag2 stores it in `offered_qos_profiles`."""
    return Qos(
        history=QosHistory.KEEP_LAST, depth=depth,
        reliability=QosReliability.RELIABLE if reliable else QosReliability.BEST_EFFORT,
        durability=QosDurability.VOLATILE,
        deadline=_INFINITE, lifespan=_INFINITE, liveliness=QosLiveliness.AUTOMATIC,
        liveliness_lease_duration=_INFINITE, avoid_ros_namespace_conventions=False)


# Errors a damaged storage file raises from inside rosbags (its MCAP parser, apsw for sqlite3).
_READ_ERRORS = (ReaderError, OSError, EOFError, ValueError, KeyError, IndexError, struct.error, apsw.Error)


def _open_reader(path: pathlib.Path) -> Reader:
    if not path.exists():
        raise BagError(f"{path}: no such bag")
    try:
        reader = Reader(path)
        reader.open()
    except _READ_ERRORS as exc:
        raise BagError(f"{path}: cannot open bag ({exc})") from None
    return reader


def bag_info(path: str | os.PathLike) -> BagInfo:
    path = pathlib.Path(path)
    reader = _open_reader(path)
    try:
        topics = {
            name: TopicInfo(name, t.msgtype or "", t.msgcount,
                            tuple(q for c in t.connections for q in c.ext.offered_qos_profiles))
            for name, t in reader.topics.items()}
        storage = "mcap" if path.suffix == ".mcap" or any(path.glob("*.mcap")) else "sqlite3"
        if not reader.message_count:
            return BagInfo(path, storage, 0, 0, topics)
        return BagInfo(path, storage, reader.start_time, reader.end_time - 1, topics)  # rosbags' end is exclusive
    finally:
        reader.close()


def read_messages(path: str | os.PathLike, topics: Sequence[str] | None = None) -> Iterator[BagMessage]:
    """Messages in log-time order; a damaged bag raises BagError after the messages read so far."""
    path = pathlib.Path(path)
    reader = _open_reader(path)
    try:
        connections = [c for c in reader.connections if topics is None or c.topic in topics]
        if not connections and topics is not None:
            return  # (rosbags reads every connection when given none)
        messages = reader.messages(connections=connections)
        while True:
            try:
                connection, timestamp, rawdata = next(messages)
            except StopIteration:
                return
            except _READ_ERRORS as exc:
                raise BagError(f"{path}: bag is truncated or corrupt ({exc})") from None
            yield BagMessage(connection.topic, connection.msgtype, timestamp, bytes(rawdata))
    finally:
        reader.close()


class BagWriter:
    """A rosbag2 bag (metadata.yaml + one .mcap or .db3) written from raw CDR payloads."""

    def __init__(self, path: str | os.PathLike, storage: str = "mcap"):
        self.path = pathlib.Path(path)
        if storage not in STORAGES:
            raise BagError(f"{self.path}: unknown storage {storage!r}, use one of {', '.join(STORAGES)}")
        if self.path.exists():
            raise BagError(f"{self.path}: exists already, remove it or choose another output")
        self._writer = Writer(self.path, version=BAG_VERSION, storage_plugin=STORAGES[storage])
        self._connections = {}
        self.counts: dict[str, int] = {}
        try:
            self._writer.open()
        except (WriterError, OSError) as exc:
            raise BagError(f"{self.path}: cannot create bag ({exc})") from None

    def add_topic(self, topic: str, msgtype: str, offered_qos: Sequence[Qos] = ()) -> None:
        if msgtype not in typestore().fielddefs:
            raise BagError(f"{self.path}: message type {msgtype} of {topic} is unknown to the type store")
        self._connections[topic] = self._writer.add_connection(
            topic, msgtype, typestore=typestore(), offered_qos_profiles=list(offered_qos))
        self.counts[topic] = 0

    def write(self, topic: str, timestamp_ns: int, rawdata: bytes) -> None:
        self._writer.write(self._connections[topic], timestamp_ns, rawdata)
        self.counts[topic] += 1

    def write_message(self, topic: str, timestamp_ns: int, message: object) -> None:
        """Serialises a type-store message (rosbags' CDR is byte-identical to rclpy's)."""
        self.write(topic, timestamp_ns, typestore().serialize_cdr(message, self._connections[topic].msgtype))

    def close(self) -> None:
        """Writes the storage index and metadata.yaml; without them `ros2 bag` cannot open the bag."""
        self._writer.close()

    def __enter__(self) -> BagWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
