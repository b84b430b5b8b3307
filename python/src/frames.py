# Frames: pandas DataFrames whose columns live in one shared segment (issue 14, point 2).
#
# This source is compiled into the extension (frames_py.hpp, made by python/CMakeLists.txt) and
# run in the module's namespace at import, so it sees the module's own names (Client, read_consistent).
#
# A frame is one shmarray array: a 0-d structured array whose fields are the columns, each a
# sub-array of `rows` elements at a page-aligned offset, plus a zero-size marker field
# "__frame__". The layout is the dtype, so the broker validates it, stores it in its catalogue
# and hands it to every process; one segment means one name, one permission, one version
# counter, one write lock and one seqlock for the whole table. Reserved field names:
#   __frame__                marker (zero bytes)
#   __index__:<name>         the column that becomes the DataFrame's index
#   __categories__:<name>    the categories of categorical column <name> (whose codes it holds)


class FrameCopyWarning(UserWarning):
    """A frame column that pandas cannot hold as a view of the shared pages was copied."""


def _frames():
    import warnings

    import numpy as np

    shmarray_wait = wait  # the module's wait(); open_frame's `wait` argument shadows it
    page = 4096
    mark, index_prefix, cats_prefix = "__frame__", "__index__:", "__categories__:"

    def round_up(n):
        return (n + page - 1) // page * page

    def column_dtype(name, spec):
        import pandas as pd
        if isinstance(spec, pd.CategoricalDtype):
            n = len(spec.categories)
            codes = "i1" if n < 128 else "i2" if n < 32768 else "i4"
            return np.dtype(codes), np.asarray(list(spec.categories))
        dtype = np.dtype(spec)
        if dtype.fields is not None or dtype.subdtype is not None or dtype.hasobject:
            raise InvalidArgument(
                f"frame column {name!r} has dtype {dtype}: a column holds one simple dtype "
                "(no structured, sub-array or object dtypes)")
        return dtype, None

    def frame_dtype(columns, rows, index=None):
        """The structured dtype of a frame: (dtype, {column: categories or None})."""
        if not isinstance(rows, int) or rows < 0:
            raise ValueError(f"rows must be a non-negative int, got {rows!r}")
        if index is not None and index not in columns:
            raise InvalidArgument(f"index={index!r} is not one of the columns {list(columns)}")
        names, formats, offsets, cats = [mark], [("u1", (0,))], [0], {}
        offset = 0
        for name, spec in columns.items():
            if not isinstance(name, str) or name.startswith("__"):
                raise InvalidArgument(f"frame column name {name!r}: names are strings not "
                                      "starting with '__'")
            dtype, categories = column_dtype(name, spec)
            names.append(index_prefix + name if name == index else name)
            formats.append((dtype, (rows,)))
            offsets.append(offset)
            offset = round_up(offset + dtype.itemsize * rows)
            cats[name] = categories
        for name, categories in cats.items():
            if categories is None:
                continue
            names.append(cats_prefix + name)
            formats.append((categories.dtype, (len(categories),)))
            offsets.append(offset)
            offset = round_up(offset + categories.nbytes)
        itemsize = max(offset, page)
        return np.dtype({"names": names, "formats": formats, "offsets": offsets,
                         "itemsize": itemsize}), cats

    def is_frame(arr):
        return arr.dtype.names is not None and arr.dtype.names[0] == mark and arr.ndim == 0

    def to_dataframe(arr, backing):
        """The DataFrame over the columns of frame array `arr` (views where pandas allows).
        `backing` (the shared array, or None for a private copy) goes into df.attrs so that the
        synchronisation functions accept the DataFrame."""
        import pandas as pd
        if not is_frame(arr):
            raise InvalidArgument(f"not a frame: dtype {arr.dtype}")
        names = arr.dtype.names[1:]
        categories = {n[len(cats_prefix):]: arr[n] for n in names if n.startswith(cats_prefix)}
        data, index, index_name = {}, None, None
        for field in names:
            if field.startswith(cats_prefix):
                continue
            name = field[len(index_prefix):] if field.startswith(index_prefix) else field
            view = arr[field]
            if name in categories:
                # A private copy of the codes, checked by from_codes: pandas indexes the categories
                # with the codes unchecked, so a code another process wrote out of range into a
                # shared view would make this process read outside its memory (a crash).
                try:
                    column = pd.Categorical.from_codes(np.array(view, copy=True),
                                                       categories=categories[name].tolist())
                except ValueError as e:
                    raise DataLoss(
                        f"frame column {name!r}: its categorical codes or categories are not "
                        f"valid ({e}): a writer stored values pandas cannot use; write valid "
                        "codes and publish, or remove and recreate the frame") from None
            else:
                column = view
                if view.dtype.kind in "Mm" and not view.dtype.isnative:
                    column = view.astype(view.dtype.newbyteorder("="))
            if field.startswith(index_prefix):
                index, index_name = column, name
            else:
                data[name] = column
        if index is not None:
            index = pd.Index(index, name=index_name, copy=False)
        else:
            index = pd.RangeIndex(arr.dtype.fields[names[0]][0].shape[0] if names else 0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            df = pd.DataFrame(data, index=index, copy=False)
        if backing is not None:
            for name in data:
                if name in categories:
                    continue  # codes are a private copy by design (above)
                field = name
                view = arr[field]
                got = df[name]
                values = got.to_numpy()
                if not np.shares_memory(values, view):
                    warnings.warn(
                        f"frame column {name!r} ({view.dtype.str}) is a copy: pandas "
                        f"{pd.__version__} cannot hold it as a view of the shared pages "
                        "(writes to it are not shared; see docs/python.md, 'Sharing DataFrames')",
                        FrameCopyWarning, stacklevel=3)
            df.attrs["shmarray"] = backing
        return df

    def create_frame(self, name, columns, rows, *, index=None, mode=0o600, ephemeral=False):
        """Creates frame `name` with `columns` (a dict name -> dtype, or pandas.CategoricalDtype,
        in order) of `rows` rows, zero-filled, and returns it as a pandas.DataFrame whose columns
        are views of the shared pages (see docs/python.md, 'Sharing DataFrames'). `index` names
        the column that becomes the index (else a RangeIndex)."""
        dtype, cats = frame_dtype(dict(columns), rows, index)
        arr = self.create(name, (), dtype, mode=mode, ephemeral=ephemeral)
        for column, categories in cats.items():
            if categories is not None:
                arr[cats_prefix + column] = categories
        return to_dataframe(arr, arr)

    def open_frame(self, name, writable=False, *, wait=None):
        """Opens frame `name` as a pandas.DataFrame over the shared pages (read-only columns
        unless `writable`). InvalidArgument if `name` is an array, not a frame. A mirror
        (docs/across-hosts.md) whose first version has not arrived yet holds no table: with
        `wait`, this waits for that version too; without, FailedPrecondition says so."""
        import time
        start = time.monotonic()
        arr = self.open(name, writable, wait=wait)
        if not is_frame(arr):
            raise InvalidArgument(f"'{name}' is an array ({arr.dtype}), not a frame: use open()")
        if version(arr) == 0:
            source = self.stat(name).mirror_of
            if source is not None:
                what = f"frame '{name}' is a mirror of {source} and has no version yet"
                if not wait:
                    raise FailedPrecondition(
                        f"{what}: wait for its first version (open_frame(..., wait=SECONDS), or "
                        "shmarray.wait(arr, newer_than=0)), then open it")
                try:
                    shmarray_wait(arr, newer_than=0,
                                  timeout=max(wait - (time.monotonic() - start), 0.001))
                except DeadlineExceeded as e:
                    raise DeadlineExceeded(f"{what} after waiting {wait} s") from e
        return to_dataframe(arr, arr)

    def put_frame(self, name, df, *, mode=0o600, ephemeral=False):
        """Creates frame `name` holding a copy of DataFrame `df` (its columns in order,
        categoricals as codes + categories, a non-default index as the index column), publishes
        it (version 1) and returns the shared DataFrame."""
        import pandas as pd
        columns, values = {}, {}
        has_index = not (isinstance(df.index, pd.RangeIndex) and df.index.start == 0
                         and df.index.step == 1)
        index_name = None
        if has_index:
            index_name = df.index.name if isinstance(df.index.name, str) else "index"
            columns[index_name] = df.index.dtype
            values[index_name] = df.index.to_numpy()
        for column in df.columns:
            series = df[column]
            if isinstance(series.dtype, pd.CategoricalDtype):
                columns[column] = series.dtype
                values[column] = series.cat.codes.to_numpy()
            else:
                values[column] = series.to_numpy()
                if values[column].dtype.hasobject:
                    # Python bytes or str objects: fixed width S<n> / U<n> if that is all they are.
                    fixed = np.array(values[column].tolist())
                    if fixed.dtype.kind not in "SU" or fixed.shape != values[column].shape:
                        raise InvalidArgument(
                            f"column {column!r} holds Python objects, which cannot be shared: "
                            "convert it to numbers, bytes or str first")
                    values[column] = fixed
                columns[column] = values[column].dtype
        shared = self.create_frame(name, columns, len(df), index=index_name, mode=mode,
                                   ephemeral=ephemeral)
        arr = shared.attrs["shmarray"]
        for column, value in values.items():
            field = index_prefix + column if column == index_name else column
            arr[field] = value
        publish(arr)
        # Made again now that the codes are in: a categorical column's codes are copied when the
        # DataFrame is made (to_dataframe), the other columns are views either way.
        return to_dataframe(arr, arr)

    def put(self, name, array, *, mode=0o600, ephemeral=False):
        """Creates array `name` holding a copy of `array` (same dtype, shape and C/F order),
        publishes it (version 1) and returns the shared ndarray."""
        array = np.asarray(array)
        order = "F" if array.flags.f_contiguous and not array.flags.c_contiguous else "C"
        shared = self.create(name, array.shape, array.dtype, order, mode=mode,
                             ephemeral=ephemeral)
        shared[...] = array
        publish(shared)
        return shared

    def read_frame_consistent(df, timeout=1.0):
        """A private copy of the whole frame behind `df`, taken inside its seqlock (a consistent
        snapshot of every column at one version): (DataFrame, version)."""
        copy, version = read_consistent(df.attrs["shmarray"], timeout)
        return to_dataframe(copy, None), version

    Client.create_frame = create_frame
    Client.open_frame = open_frame
    Client.put_frame = put_frame
    Client.put = put
    return read_frame_consistent


read_frame_consistent = _frames()
del _frames
