"""Teachers (registry + adapters), person-box proposals, the labelling run and post-processing."""

from pseudolabel.registry import Teacher, TeacherConfig, create_teacher, list_teachers, register_teacher

__all__ = ["Teacher", "TeacherConfig", "create_teacher", "list_teachers", "register_teacher"]
