"""Server reflection that keeps the protos' comments, so `grpcurl describe` shows them.

grpc_reflection serializes the files of its descriptor pool with
FileDescriptor.CopyToProto, which gives no source info (the comments): the
descriptors compiled into the generated stubs have none, and upb drops it from
a pool built from a descriptor set too. DocumentedPool is the default pool as
grpc_reflection uses it, except that the files of generated/'s descriptor set
(scripts/gen_proto.sh, with --include_source_info) serialize with the set's
source info.
"""

from __future__ import annotations

from importlib.resources import files

from google.protobuf import descriptor_pb2, descriptor_pool

DESCRIPTOR_SET = files("microfin") / "descriptor_set.binpb"


class DocumentedPool:
    """For `enable_server_reflection(..., pool=DocumentedPool())`."""

    def __init__(self) -> None:
        documented = descriptor_pb2.FileDescriptorSet.FromString(DESCRIPTOR_SET.read_bytes())
        self._documented = {proto.name: proto for proto in documented.file}
        self._pool = descriptor_pool.Default()

    def __getattr__(self, name: str):  # the message and extension lookups
        return getattr(self._pool, name)

    def FindFileByName(self, name: str) -> _File:
        return _File(self._pool.FindFileByName(name), self._documented)

    def FindFileContainingSymbol(self, symbol: str) -> _File:
        try:
            file = self._pool.FindFileContainingSymbol(symbol)
        except KeyError:
            # upb's lookup misses methods, which `grpcurl describe Service.Method` asks for.
            file = self._pool.FindMethodByName(symbol).containing_service.file
        return _File(file, self._documented)


class _File:
    """A FileDescriptor as grpc_reflection uses it: its name, its dependencies, its proto."""

    def __init__(self, file, documented: dict[str, descriptor_pb2.FileDescriptorProto]) -> None:
        self._file = file
        self._documented = documented
        self.name = file.name

    @property
    def dependencies(self) -> list[_File]:
        return [_File(dependency, self._documented) for dependency in self._file.dependencies]

    def CopyToProto(self, proto: descriptor_pb2.FileDescriptorProto) -> None:
        self._file.CopyToProto(proto)
        # Only the comments from the set: its json_name fields (absent from the
        # compiled descriptors) would turn grpcurl's JSON into lowerCamelCase.
        if self.name in self._documented:  # not google/type/date.proto nor grpc.health.v1
            proto.source_code_info.CopyFrom(self._documented[self.name].source_code_info)
