"""Order of the gallery: the quick start first, then the listed examples,
then any other example by file name."""

FIRST = [
    "plot_quick_start.py",
    "plot_grid_search.py",
    "plot_out_of_core_sms_spam.py",
    "plot_dask_incremental.py",
    "plot_dask_data_parallel.py",
    "plot_data_parallel_threads.py",
]


class ExampleOrder:
    """Sort key for ``sphinx_gallery_conf['within_subsection_order']``."""

    def __init__(self, src_dir):
        self.src_dir = src_dir

    def __call__(self, filename):
        if filename in FIRST:
            return (0, FIRST.index(filename), filename)
        return (1, 0, filename)

    def __repr__(self):
        return "ExampleOrder"
