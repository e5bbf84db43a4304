# The image's IPython kernel configuration, installed by postBuild into {sys.prefix}/etc/ipython.
# pangeo_messages: refusals of Dask Gateway and of the scratch bucket shown as what they mean, first.
c = get_config()  # noqa: F821  (provided by traitlets when it loads this file)
c.InteractiveShellApp.extensions = ["pangeo_messages"]
