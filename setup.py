"""Install mmswin. Dependencies are pinned in requirements/ and installed by `make setup`."""

from setuptools import find_packages, setup


def read_version() -> str:
    namespace: dict = {}
    with open('mmswin/version.py') as f:
        exec(f.read(), namespace)
    return namespace['__version__']


setup(
    name='mmswin',
    version=read_version(),
    description='Swin Transformer backbone for MMDetection 3.x and MMSegmentation 1.x',
    long_description=open('README.md').read() if __import__('os').path.exists('README.md') else '',
    long_description_content_type='text/markdown',
    packages=find_packages(include=['mmswin', 'mmswin.*']),
    python_requires='>=3.9',
    install_requires=['torch', 'mmengine>=0.10,<1.0'],
    license='Apache-2.0',
)
