namespace TrainingForensics.Data;

/// <summary>A data file that is missing, truncated or not what it claims to be. The message names the file and the cause.</summary>
public sealed class DataFileException : Exception
{
    public string FilePath { get; }
    public DataFileException(string filePath, string cause, Exception? inner = null)
        : base($"{filePath}: {cause}", inner) => FilePath = filePath;
}
