"""What every epoch step needs: which book and epoch it is, its agents, a stable seed."""


import hashlib
from dataclasses import dataclass

from dream_pipeline.domains import load_domain
from dream_pipeline.epoch.keys import parse_epoch_key
from resources.fabric import EpochRecord, StateFabric
from spica import SpicaAgent, SpicaDomain


@dataclass(frozen=True)
class EpochScope:
    book: SpicaDomain  # the epoch's domain (a book so far), from the registry
    epoch: EpochRecord
    agents: tuple[SpicaAgent, ...]

    @property
    def key(self) -> str:
        return self.epoch.epoch_key

    @property
    def number(self) -> int:
        return self.epoch.epoch_number

    def agent(self, name: str) -> SpicaAgent:
        for agent in self.agents:
            if agent.name == name:
                return agent
        raise KeyError(f"{name!r} is not on the roster of {self.key}")


def load_scope(fabric: StateFabric, partition_key: str) -> EpochScope:
    """The opened epoch behind a partition key (the opening step opens it)."""
    return scope_for(fabric, fabric.epoch(partition_key))


def scope_for(fabric: StateFabric, epoch: EpochRecord) -> EpochScope:
    """The scope of an epoch already read (the opening step has it from the barrier): its agents are read."""
    book_name, _ = parse_epoch_key(epoch.epoch_key)
    return EpochScope(load_domain(book_name), epoch, tuple(fabric.agents(epoch.active_agent_ids)))


def epoch_seed(epoch_key: str) -> int:
    """A seed that is the same for every rerun of an epoch and differs between epochs."""
    return int(hashlib.sha256(epoch_key.encode()).hexdigest()[:12], 16)
