from recbole_instructrec.trainer.trainer import InstructRecTrainer

__all__ = ["InstructRecTrainer"]
