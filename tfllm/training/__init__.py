"""The training engine every recipe shares: strategy, optimizer, loop."""

from tfllm.training.optimizer import AdamW
from tfllm.training.optimizer import WarmupLinearDecay
from tfllm.training.optimizer import create_learning_rate_schedule
from tfllm.training.optimizer import create_optimizer
from tfllm.training.strategy import create_strategy
from tfllm.training.strategy import is_chief
from tfllm.training.strategy import per_replica_batch_size
from tfllm.training.strategy import split_cpu_into_logical_devices
from tfllm.training.strategy import wait_for_all_workers
from tfllm.training.trainer import Trainer
