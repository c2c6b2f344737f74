"""Packaging glue that pyproject.toml cannot express: the repository's top-level folders
(messages/, actors/, adapters/, config/, supervision/, strategy/, analysis/) install as subpackages of one import
name, ``arbor``, so no top-level ``config`` or ``messages`` module reaches site-packages."""

from setuptools import find_packages, setup

FOLDERS = ("messages", "actors", "adapters", "config", "supervision", "strategy", "analysis")

packages = [
    f"arbor.{name}" for name in find_packages(include=[f"{folder}*" for folder in FOLDERS])
]
packages.append("arbor.adapters.operator.static")  # the dashboard's files: data, not code
setup(packages=packages, package_dir={f"arbor.{folder}": folder for folder in FOLDERS})
