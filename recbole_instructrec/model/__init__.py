from recbole_instructrec.model.instructrec import InstructRec

__all__ = ["InstructRec"]
