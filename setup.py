"""Package discovery: everything under localembed/, and webui/ installed as localembed.webui.

pyproject.toml can either list packages by hand (which once forgot localembed.desktop) or
discover them, not both; the web UI lives in its own top-level folder, so discovery is done here.
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["localembed", "localembed.*"]), "localembed.webui"],
    package_dir={"localembed.webui": "webui"},
)
